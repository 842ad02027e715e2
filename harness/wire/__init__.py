"""A misbehaving HTTP/2 peer (issue 20 §2): a raw endpoint on the `h2` library that plays scripted
frame sequences, as a server toward each gRPC client and as a client toward each gRPC server.
docs/wire.md lists the scripts, the directions they run in and what each library does."""
