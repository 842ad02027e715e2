package seeds

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/grpc-interop-harness/go_peer/gen/pb/routeguide"
)

// The features database, copied next to this file by harness/protoset/codegen.py at build time from
// python_impl/data/route_guide_db.json.
//
//go:embed route_guide_db.json
var routeGuideDB []byte

// LoadFeatures parses the database: a JSON list of Features in protobuf JSON form.
func LoadFeatures(data []byte) ([]*pb.Feature, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("route guide database: %v", err)
	}
	out := make([]*pb.Feature, len(raws))
	for i, raw := range raws {
		f := &pb.Feature{}
		if err := protojson.Unmarshal(raw, f); err != nil {
			return nil, fmt.Errorf("route guide database, feature %d: %v", i, err)
		}
		out[i] = f
	}
	return out, nil
}

type latLon struct{ lat, lon int32 }

func key(p *pb.Point) latLon { return latLon{p.GetLatitude(), p.GetLongitude()} }

// RouteGuideServer implements routeguide.RouteGuide over the embedded database.
type RouteGuideServer struct {
	pb.UnimplementedRouteGuideServer
	features []*pb.Feature
	byPoint  map[latLon]*pb.Feature
}

// NewRouteGuideServer loads the embedded database (it is checked at build time: a broken file
// is a build defect, so it panics).
func NewRouteGuideServer() *RouteGuideServer {
	fs, err := LoadFeatures(routeGuideDB)
	if err != nil {
		panic(err)
	}
	return NewRouteGuideServerWith(fs)
}

// NewRouteGuideServerWith serves the given features.
func NewRouteGuideServerWith(features []*pb.Feature) *RouteGuideServer {
	s := &RouteGuideServer{features: features, byPoint: map[latLon]*pb.Feature{}}
	for _, f := range features {
		s.byPoint[key(f.GetLocation())] = f
	}
	return s
}

// GetFeature answers the feature at exactly that point, else an unnamed feature there.
func (s *RouteGuideServer) GetFeature(_ context.Context, p *pb.Point) (*pb.Feature, error) {
	if f, ok := s.byPoint[key(p)]; ok {
		return f, nil
	}
	return &pb.Feature{Name: "", Location: p}, nil
}

// ListFeatures streams the features inside the rectangle (borders included), in database order.
func (s *RouteGuideServer) ListFeatures(r *pb.Rectangle, stream grpc.ServerStreamingServer[pb.Feature]) error {
	lo, hi := r.GetLo(), r.GetHi()
	minLat, maxLat := min(lo.GetLatitude(), hi.GetLatitude()), max(lo.GetLatitude(), hi.GetLatitude())
	minLon, maxLon := min(lo.GetLongitude(), hi.GetLongitude()), max(lo.GetLongitude(), hi.GetLongitude())
	for _, f := range s.features {
		lat, lon := f.GetLocation().GetLatitude(), f.GetLocation().GetLongitude()
		if minLon <= lon && lon <= maxLon && minLat <= lat && lat <= maxLat {
			if err := stream.Send(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// Haversine is the great-circle distance in metres between two E7 points, computed exactly as
// docs/seeds.md writes it (the float64 conversions keep the compiler from fusing multiply-adds).
func Haversine(p1, p2 *pb.Point) float64 {
	phi1 := float64(p1.GetLatitude()) / 1e7 * math.Pi / 180
	phi2 := float64(p2.GetLatitude()) / 1e7 * math.Pi / 180
	l1 := float64(p1.GetLongitude()) / 1e7 * math.Pi / 180
	l2 := float64(p2.GetLongitude()) / 1e7 * math.Pi / 180
	dphi := phi2 - phi1
	dl := l2 - l1
	s1 := math.Sin(dphi / 2)
	s2 := math.Sin(dl / 2)
	a := float64(s1*s1) + float64(float64(float64(math.Cos(phi1)*math.Cos(phi2))*s2)*s2)
	c := 2 * math.Atan2(math.Sqrt(a), math.Sqrt(1-a))
	return 6371000 * c
}

// Summarize computes the RouteSummary of a route.
func (s *RouteGuideServer) Summarize(points []*pb.Point) *pb.RouteSummary {
	var features int32
	total := 0.0
	for i, p := range points {
		if _, ok := s.byPoint[key(p)]; ok {
			features++
		}
		if i > 0 {
			total += Haversine(points[i-1], p)
		}
	}
	n := int32(len(points))
	return &pb.RouteSummary{
		PointCount:   n,
		FeatureCount: features,
		Distance:     int32(math.Floor(total + 0.5)),
		ElapsedTime:  max(n-1, 0),
	}
}

// RecordRoute summarizes the streamed route; time is taken as one point a second.
func (s *RouteGuideServer) RecordRoute(stream grpc.ClientStreamingServer[pb.Point, pb.RouteSummary]) error {
	var points []*pb.Point
	for {
		p, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(s.Summarize(points))
		}
		if err != nil {
			return err
		}
		points = append(points, p)
	}
}

// RouteChat sends, for each note, every earlier note of the call at the same location.
func (s *RouteGuideServer) RouteChat(stream grpc.BidiStreamingServer[pb.RouteNote, pb.RouteNote]) error {
	var notes []*pb.RouteNote
	for {
		n, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, old := range notes {
			if key(old.GetLocation()) == key(n.GetLocation()) {
				if err := stream.Send(old); err != nil {
					return err
				}
			}
		}
		notes = append(notes, n)
	}
}
