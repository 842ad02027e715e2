package seeds

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
	"testing"

	"google.golang.org/grpc/metadata"

	pb "github.com/grpc-interop-harness/go_peer/gen/pb/routeguide"
)

func TestMix(t *testing.T) {
	for _, c := range []struct {
		d    int64
		want uint64
	}{
		{0, 0xE220A8397B1DCDAF}, // the first SplitMix64 output for seed 0
		{1, 0x910A2DEC89025CC1},
		{19723, 0x47A4C66CFE6DDE15}, // 2024-01-01
		{-1, 0xE4D971771B652C20},    // d taken mod 2^64
	} {
		if got := Mix(c.d); got != c.want {
			t.Errorf("Mix(%d) = %#x, want %#x", c.d, got, c.want)
		}
	}
}

func TestPricesNegativeDays(t *testing.T) {
	// Python's floor modulo: (-1) % 80 == 79.
	if got, want := CloseCents(-1), int64(9500+39*25)+int64(Mix(-1)%401)-200; got != want {
		t.Errorf("CloseCents(-1) = %d, want %d", got, want)
	}
}

func TestTradingDaysErrors(t *testing.T) {
	for _, c := range []struct{ start, end, msg string }{
		{"2024-1-01", "2024-01-02", `start_date: cannot parse "2024-1-01" as YYYY-MM-DD`},
		{"2024-01-01", "2024-02-30", `end_date: cannot parse "2024-02-30" as YYYY-MM-DD`},
		{"", "2024-01-01", `start_date: cannot parse "" as YYYY-MM-DD`},
		{"2024-01-05", "2024-01-04", "end_date is before start_date"},
		{"2024-01-01", "2025-01-02", "range spans more than 366 days"},
	} {
		_, err := TradingDays(c.start, c.end)
		if err == nil || err.Error() != c.msg {
			t.Errorf("TradingDays(%q, %q) error = %v, want %q", c.start, c.end, err, c.msg)
		}
	}
	if days, err := TradingDays("2024-01-01", "2025-01-01"); err != nil || len(days) != 263 {
		t.Errorf("366-day span: %d days, %v", len(days), err)
	}
	if days, err := TradingDays("2024-01-06", "2024-01-07"); err != nil || len(days) != 0 {
		t.Errorf("weekend: %v, %v", days, err)
	}
}

func TestMACDFirstDay(t *testing.T) {
	r, err := MACD("2024-01-01", "2024-01-05")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Macd) != 5 || r.Macd[0].Date != "2024-01-01" || r.Macd[4].Date != "2024-01-05" {
		t.Fatalf("dates: %v", r.Macd)
	}
	if r.Macd[0].Macd != 0 { // dif(0) = 0, dea(0) = dif(0)
		t.Errorf("macd[0] = %v", r.Macd[0].Macd)
	}
	d := int64(19723)
	if got, want := r.Macd[0].Close, float32(float64(CloseCents(d))/100.0); got != want {
		t.Errorf("close = %v, want %v", got, want)
	}
	if r.Macd[1].Open != r.Macd[0].Close {
		t.Errorf("open(d) != close(d-1)")
	}
}

func TestBMPHeader(t *testing.T) {
	days, _ := TradingDays("2024-01-01", "2024-01-05")
	img := BMP(days)
	w, h := 20, 100
	rowSize := (3*w + 3) / 4 * 4
	if len(img) != 54+rowSize*h {
		t.Fatalf("size %d", len(img))
	}
	le := binary.LittleEndian
	checks := []struct {
		name      string
		got, want uint32
	}{
		{"file size", le.Uint32(img[2:]), uint32(len(img))},
		{"offset", le.Uint32(img[10:]), 54},
		{"info size", le.Uint32(img[14:]), 40},
		{"width", le.Uint32(img[18:]), uint32(w)},
		{"height", le.Uint32(img[22:]), uint32(h)},
		{"planes", uint32(le.Uint16(img[26:])), 1},
		{"bpp", uint32(le.Uint16(img[28:])), 24},
		{"compression", le.Uint32(img[30:]), 0},
		{"image size", le.Uint32(img[34:]), uint32(rowSize * h)},
		{"xppm", le.Uint32(img[38:]), 2835},
		{"yppm", le.Uint32(img[42:]), 2835},
	}
	if string(img[:2]) != "BM" {
		t.Errorf("magic %q", img[:2])
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	// Bottom row: every bar has h >= 1; column 4i+3 stays white.
	px := img[54:]
	for i, d := range days {
		want := []byte{0, 160, 0}
		if d.Close < d.Open {
			want = []byte{0, 0, 200}
		}
		if got := px[3*4*i : 3*4*i+3]; !slices.Equal(got, want) {
			t.Errorf("bar %d bottom pixel %v, want %v", i, got, want)
		}
		if got := px[3*(4*i+3) : 3*(4*i+3)+3]; !slices.Equal(got, []byte{255, 255, 255}) {
			t.Errorf("gap %d pixel %v", i, got)
		}
	}
	// The highest close reaches row 98 (h = 99), never row 99.
	top := px[99*rowSize : 99*rowSize+3*w]
	for _, b := range top {
		if b != 255 {
			t.Fatalf("top row not white")
		}
	}
	if BMP(nil) != nil {
		t.Errorf("no day must give no image")
	}
	sum := sha256.Sum256(img)
	t.Logf("BMP 2024-01-01..05: %d bytes sha256 %s", len(img), hex.EncodeToString(sum[:]))
}

func TestHaversine(t *testing.T) {
	// One degree of latitude along a meridian: 6371000 * pi / 180.
	d := Haversine(&pb.Point{Latitude: 0, Longitude: 0}, &pb.Point{Latitude: 10000000, Longitude: 0})
	if want := 6371000 * math.Pi / 180; math.Abs(d-want) > 1e-6 {
		t.Errorf("1 degree = %v, want %v", d, want)
	}
	if d := Haversine(&pb.Point{Latitude: 5, Longitude: 7}, &pb.Point{Latitude: 5, Longitude: 7}); d != 0 {
		t.Errorf("same point = %v", d)
	}
}

func TestSummarize(t *testing.T) {
	s := NewRouteGuideServer()
	f := s.features
	pts := []*pb.Point{f[0].Location, f[1].Location, {Latitude: 1, Longitude: 1}, f[0].Location}
	sum := s.Summarize(pts)
	if sum.PointCount != 4 || sum.FeatureCount != 3 || sum.ElapsedTime != 3 {
		t.Errorf("summary %v", sum)
	}
	want := Haversine(pts[0], pts[1]) + Haversine(pts[1], pts[2]) + Haversine(pts[2], pts[3])
	if sum.Distance != int32(math.Floor(want+0.5)) {
		t.Errorf("distance %d, want %v", sum.Distance, want)
	}
	if e := s.Summarize(nil); e.PointCount != 0 || e.ElapsedTime != 0 || e.Distance != 0 {
		t.Errorf("empty route %v", e)
	}
}

func TestWords(t *testing.T) {
	got := Words("  a\tb  c ")
	if !slices.Equal(got, []string{"a\tb", "c"}) {
		t.Errorf("Words = %q", got)
	}
	if Words("") != nil {
		t.Errorf("empty greeting must give no word")
	}
}

func TestEchoHeaders(t *testing.T) {
	in := metadata.MD{
		"ip": {"1", "2"}, "x-bin": {"\x00\xff"}, "user-agent": {"u"}, "grpc-timeout": {"1S"},
		":authority": {"a"}, "te": {"trailers"}, "content-type": {"application/grpc"},
		"interop-case": {"c"}, "interop-session": {"s"}, "interop-call": {"0"}, "interop-anything-bin": {"x"},
	}
	got := EchoHeaders(in)
	want := metadata.MD{"echo-ip": {"1", "2"}, "echo-x-bin": {"\x00\xff"}}
	if len(got) != len(want) || !slices.Equal(got["echo-ip"], want["echo-ip"]) || !slices.Equal(got["echo-x-bin"], want["echo-x-bin"]) {
		t.Errorf("EchoHeaders = %v", got)
	}
}

func TestPositionSessions(t *testing.T) {
	s := NewPositionServer()
	ctxA := metadata.NewIncomingContext(context.Background(), metadata.Pairs("interop-session", "A"))
	ctxB := metadata.NewIncomingContext(context.Background(), metadata.Pairs("interop-session", "B"))
	if _, err := s.PositionReq(ctxA, nil); err != nil {
		t.Fatal(err)
	}
	p, _ := s.PositionReq(ctxA, nil)
	if want := float32(math.Cos(5 * math.Pi / 180)); p.Position.X != want {
		t.Errorf("second position x = %v, want %v", p.Position.X, want)
	}
	p, _ = s.PositionReq(ctxB, nil)
	if p.Position.X != 1 || p.Position.Y != 0 {
		t.Errorf("session B starts at n=0: %v", p)
	}
}
