"""grpc-interop fuzz: differential fuzzing of Python and Go with Hypothesis (strategies from descriptors)."""
