package seeds

import (
	"context"
	"math"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-interop-harness/go_peer/gen/pb/posxyz"
)

// PositionServer implements posXYZ.PositionService with state per interop-session.
type PositionServer struct {
	pb.UnimplementedPositionServiceServer
	mu       sync.Mutex
	sessions map[string]*positionState
}

type positionState struct {
	next   int          // n of the next non-"last" PositionReq
	stored int32        // positions stored by PositionPub
	last   *pb.Position // last stored position
}

// NewPositionServer returns a server with no sessions.
func NewPositionServer() *PositionServer {
	return &PositionServer{sessions: map[string]*positionState{}}
}

func (s *PositionServer) state(key string) *positionState {
	st := s.sessions[key]
	if st == nil {
		st = &positionState{}
		s.sessions[key] = st
	}
	return st
}

// CirclePosition is the n-th position on the unit circle, in 5 degree steps.
func CirclePosition(n int) *pb.Position {
	a := float64(n) * 5.0 * math.Pi / 180.0
	return &pb.Position{
		Position: &pb.Pos{X: float32(math.Cos(a)), Y: float32(math.Sin(a)), Z: 0},
		Status:   0,
		Msg:      "character position",
	}
}

// PositionReq answers the last published position ("last") or the next circle position.
func (s *PositionServer) PositionReq(ctx context.Context, req *pb.Msg) (*pb.Position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(session(ctx))
	if req.GetMsg() == "last" {
		if st.last == nil {
			return nil, status.Error(codes.NotFound, "no position published in this session")
		}
		return st.last, nil // never mutated after it is stored
	}
	n := st.next
	st.next++
	return CirclePosition(n), nil
}

// PositionPub stores a position for the session.
func (s *PositionServer) PositionPub(ctx context.Context, req *pb.Position) (*pb.Msg, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.state(session(ctx))
	// Stored as received, not proto.Clone'd: Clone (proto.Merge) drops a proto3 float that is -0.0,
	// which the interop run caught (py→go PositionPub/stores_then_last).
	st.last = req
	st.stored++
	return &pb.Msg{Status: st.stored, Msg: "stored"}, nil
}
