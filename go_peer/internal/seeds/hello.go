package seeds

import (
	"context"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"

	pb "github.com/grpc-interop-harness/go_peer/gen/pb/tutorial"
)

// HelloServer implements tutorial.HelloService.
type HelloServer struct {
	pb.UnimplementedHelloServiceServer
}

func hello(s string) *pb.HelloResponse { return &pb.HelloResponse{Reply: "hello " + s} }

// SayHello answers "hello " + greeting.
func (HelloServer) SayHello(_ context.Context, req *pb.HelloRequest) (*pb.HelloResponse, error) {
	return hello(req.GetGreeting()), nil
}

// Words splits on the ASCII space only and drops empty parts.
func Words(s string) []string {
	var out []string
	for _, w := range strings.Split(s, " ") {
		if w != "" {
			out = append(out, w)
		}
	}
	return out
}

// LotsOfReplies answers "hello " + word for every space-separated word.
func (HelloServer) LotsOfReplies(req *pb.HelloRequest, stream grpc.ServerStreamingServer[pb.HelloResponse]) error {
	for _, w := range Words(req.GetGreeting()) {
		if err := stream.Send(hello(w)); err != nil {
			return err
		}
	}
	return nil
}

// LotsOfGreetings answers one "hello " + ", ".join(greetings).
func (HelloServer) LotsOfGreetings(stream grpc.ClientStreamingServer[pb.HelloRequest, pb.HelloResponse]) error {
	var greetings []string
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(hello(strings.Join(greetings, ", ")))
		}
		if err != nil {
			return err
		}
		greetings = append(greetings, req.GetGreeting())
	}
}

// BidiHello answers every request at once.
func (HelloServer) BidiHello(stream grpc.BidiStreamingServer[pb.HelloRequest, pb.HelloResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(hello(req.GetGreeting())); err != nil {
			return err
		}
	}
}
