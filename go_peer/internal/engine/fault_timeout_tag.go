//go:build interop_fault_timeout_round_up

package engine

const faultTimeoutRoundUp = true
