package seeds

import (
	"context"
	"hash/crc32"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-interop-harness/go_peer/gen/pb/users"
)

// UsersServer implements users.Users.
type UsersServer struct {
	pb.UnimplementedUsersServer
}

// EchoHeaders is the metadata CreateUser echoes: every request key except grpc-*, :*,
// user-agent, content-type, te and interop-*, as echo-<key> with the same values in order.
func EchoHeaders(in metadata.MD) metadata.MD {
	out := metadata.MD{}
	for k, vs := range in {
		switch {
		case strings.HasPrefix(k, "grpc-"), strings.HasPrefix(k, ":"):
			continue
		case k == "user-agent", k == "content-type", k == "te", strings.HasPrefix(k, "interop-"):
			continue
		}
		out["echo-"+k] = append([]string(nil), vs...)
	}
	return out
}

// CreateUser echoes the request metadata in the response headers, then answers the user with
// user_id = CRC-32 of the username.
func (UsersServer) CreateUser(ctx context.Context, req *pb.CreateUserRequest) (*pb.CreateUserResult, error) {
	in, _ := metadata.FromIncomingContext(ctx)
	if err := grpc.SendHeader(ctx, EchoHeaders(in)); err != nil {
		return nil, err
	}
	if req.GetUsername() == "" {
		return nil, status.Error(codes.InvalidArgument, "username must not be empty")
	}
	return &pb.CreateUserResult{User: &pb.User{
		Username: req.GetUsername(),
		UserId:   crc32.ChecksumIEEE([]byte(req.GetUsername())),
	}}, nil
}

// GetUsers answers every user of the request, in order, unchanged.
func (UsersServer) GetUsers(req *pb.GetUsersRequest, stream grpc.ServerStreamingServer[pb.GetUsersResult]) error {
	for _, u := range req.GetUser() {
		if err := stream.Send(&pb.GetUsersResult{User: u}); err != nil {
			return err
		}
	}
	return nil
}
