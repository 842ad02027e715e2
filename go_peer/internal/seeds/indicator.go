package seeds

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/grpc-interop-harness/go_peer/gen/pb/idc"
)

// ChunkSize of GetMACDGraph replies.
const ChunkSize = 1024

func rangeStatus(err error) error {
	var re RangeError
	if errors.As(err, &re) {
		return status.Error(codes.InvalidArgument, re.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// IndicatorServer implements idc.Indicator.
type IndicatorServer struct {
	pb.UnimplementedIndicatorServer
}

// MACD computes the GetMACD reply of a date range.
func MACD(start, end string) (*pb.MACDReply, error) {
	days, err := TradingDays(start, end)
	if err != nil {
		return nil, err
	}
	closes := make([]float64, len(days))
	for i, d := range days {
		closes[i] = float64(d.Close) / 100.0
	}
	hist := MACDHistogram(closes)
	reply := &pb.MACDReply{}
	for i, d := range days {
		reply.Macd = append(reply.Macd, &pb.MACDData{
			Date:  d.Date,
			Open:  float32(float64(d.Open) / 100.0),
			Close: float32(float64(d.Close) / 100.0),
			High:  float32(float64(d.High) / 100.0),
			Low:   float32(float64(d.Low) / 100.0),
			Macd:  float32(hist[i]),
		})
	}
	return reply, nil
}

// GetMACD answers one MACDData per trading day.
func (IndicatorServer) GetMACD(_ context.Context, req *pb.MACDRequest) (*pb.MACDReply, error) {
	reply, err := MACD(req.GetStartDate(), req.GetEndDate())
	if err != nil {
		return nil, rangeStatus(err)
	}
	return reply, nil
}

// IndicatorGraphServer implements idc.IndicatorGraph.
type IndicatorGraphServer struct {
	pb.UnimplementedIndicatorGraphServer
}

// GetMACDGraph streams the BMP chart of the range in chunks of ChunkSize bytes.
func (IndicatorGraphServer) GetMACDGraph(req *pb.MACDGraphRequest, stream grpc.ServerStreamingServer[pb.MACDGraphReply]) error {
	days, err := TradingDays(req.GetStartDate(), req.GetEndDate())
	if err != nil {
		return rangeStatus(err)
	}
	img := BMP(days)
	for off := 0; off < len(img); off += ChunkSize {
		chunk := img[off:min(off+ChunkSize, len(img))]
		if err := stream.Send(&pb.MACDGraphReply{MacdChunk: chunk}); err != nil {
			return err
		}
	}
	return nil
}
