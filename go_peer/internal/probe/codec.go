package probe

import (
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// Frame is one message as the bytes on the wire: the probe sends the exact bytes every client
// flavour sends, and hands back what the server sent before anything decodes it.
type Frame struct{ Bytes []byte }

// passThrough is grpc-go's proto codec with one addition: a *Frame travels as its bytes, unchanged.
// It is registered under grpc-go's own name "proto" rather than given with grpc.ForceCodecV2,
// because a forced codec makes grpc-go send content-type "application/grpc+<name>" where a stock
// grpc-go client sends "application/grpc"; the probe must look like the library a user runs.
// Every other message (a server's, in this package's tests) still goes through grpc-go's codec.
type passThrough struct{ proto encoding.CodecV2 }

func (c passThrough) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*Frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.Bytes)}, nil
	}
	return c.proto.Marshal(v)
}

func (c passThrough) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*Frame); ok {
		// an empty message (all fields default) materialises as nil, which encoding/json writes as
		// null: the outcome must say "" like every other flavour, or the flavours seem to disagree
		f.Bytes = append([]byte{}, data.Materialize()...)
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (c passThrough) Name() string { return proto.Name }

var install sync.Once

// InstallCodec puts the pass-through codec in place of grpc-go's proto codec, once, before the
// first call (grpc-go reads its codec registry per call).
func InstallCodec() {
	install.Do(func() {
		encoding.RegisterCodecV2(passThrough{proto: encoding.GetCodecV2(proto.Name)})
	})
}
