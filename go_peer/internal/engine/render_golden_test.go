package engine_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/grpc-interop-harness/go_peer/gen/glue" // registers every message type of the proto set
	"github.com/grpc-interop-harness/go_peer/internal/engine"
)

// goldenCase is one entry of testdata/diffs.json, the rendering spec both engines follow
// (tests/test_diff_golden.py reads the same file for the Python engine).
type goldenCase struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Expected   json.RawMessage `json:"expected"`
	Got        json.RawMessage `json:"got"`
	GotUnknown string          `json:"got_unknown"`
	Diffs      [][3]string     `json:"diffs"`
}

func goldenMessage(t *testing.T, typeName string, raw json.RawMessage, unknown string) protoreflect.Message {
	t.Helper()
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(typeName))
	if err != nil {
		t.Fatalf("%s: %v", typeName, err)
	}
	m := mt.New().Interface()
	if err := protojson.Unmarshal(raw, m); err != nil {
		t.Fatalf("%s %s: %v", typeName, raw, err)
	}
	if unknown != "" {
		b, err := base64.StdEncoding.DecodeString(unknown)
		if err != nil {
			t.Fatal(err)
		}
		if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
	}
	return m.ProtoReflect()
}

// goldenCall is one entry of the file's "calls": a whole call checked against what came back.
type goldenCall struct {
	Name    string          `json:"name"`
	Call    json.RawMessage `json:"call"`
	Outcome struct {
		Status   string              `json:"status"`
		Message  string              `json:"message"`
		Headers  map[string][]string `json:"headers"`
		Trailers map[string][]string `json:"trailers"`
	} `json:"outcome"`
	Diffs [][3]string `json:"diffs"`
}

// goldenStream is one entry of the file's "streams": two lists of messages, compared as responses.
type goldenStream struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Expected []json.RawMessage `json:"expected"`
	Got      []json.RawMessage `json:"got"`
	Diffs    [][3]string       `json:"diffs"`
}

type goldenFile struct {
	Cases   []goldenCase   `json:"cases"`
	Calls   []goldenCall   `json:"calls"`
	Streams []goldenStream `json:"streams"`
}

func readGolden(t *testing.T) goldenFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/diffs.json")
	if err != nil {
		t.Fatal(err)
	}
	var file goldenFile
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 || len(file.Calls) == 0 || len(file.Streams) == 0 {
		t.Fatal("testdata/diffs.json has no cases, calls or streams")
	}
	return file
}

func sameDiffs(t *testing.T, ds []engine.Diff, want [][3]string) {
	t.Helper()
	got := [][3]string{}
	for _, x := range ds {
		got = append(got, [3]string{x.Path, x.Expected, x.Got})
	}
	if want == nil {
		want = [][3]string{}
	}
	if len(got) != len(want) {
		t.Fatalf("diffs\n got %q\nwant %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("diff %d\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

func goldenMetadata(t *testing.T, md map[string][]string) metadata.MD {
	t.Helper()
	out := metadata.MD{}
	for k, vs := range md {
		for _, v := range vs {
			if strings.HasSuffix(k, "-bin") {
				b, err := base64.StdEncoding.DecodeString(v)
				if err != nil {
					t.Fatal(err)
				}
				v = string(b)
			}
			out.Append(k, v)
		}
	}
	return out
}

func TestCallCheckGolden(t *testing.T) {
	for _, c := range readGolden(t).Calls {
		t.Run(c.Name, func(t *testing.T) {
			var call engine.Call
			if err := json.Unmarshal(c.Call, &call); err != nil {
				t.Fatal(err)
			}
			p, err := engine.Prepare(&call)
			if err != nil {
				t.Fatal(err)
			}
			code := codes.Code(99)
			for i := range 17 {
				if engine.CodeName(codes.Code(i)) == c.Outcome.Status {
					code = codes.Code(i)
				}
			}
			out := engine.Outcome{Status: status.New(code, c.Outcome.Message),
				Header: goldenMetadata(t, c.Outcome.Headers), Trailer: goldenMetadata(t, c.Outcome.Trailers)}
			sameDiffs(t, engine.Check(0, p, out), c.Diffs)
		})
	}
}

func TestDiffRenderingGolden(t *testing.T) {
	file := readGolden(t)
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			d := engine.NewDiffer(nil)
			d.Message("m", goldenMessage(t, c.Type, c.Expected, ""), goldenMessage(t, c.Type, c.Got, c.GotUnknown))
			sameDiffs(t, d.Diffs(), c.Diffs)
		})
	}
}

func TestStreamDiffsGolden(t *testing.T) {
	for _, c := range readGolden(t).Streams {
		t.Run(c.Name, func(t *testing.T) {
			list := func(raws []json.RawMessage) []proto.Message {
				out := []proto.Message{}
				for _, raw := range raws {
					out = append(out, goldenMessage(t, c.Type, raw, "").Interface())
				}
				return out
			}
			d := engine.NewDiffer(nil)
			d.Messages("responses", list(c.Expected), list(c.Got))
			sameDiffs(t, d.Diffs(), c.Diffs)
		})
	}
}
