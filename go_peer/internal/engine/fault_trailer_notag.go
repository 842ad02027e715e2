//go:build !interop_fault_drop_empty_trailer

package engine

const faultDropEmptyTrailer = false
