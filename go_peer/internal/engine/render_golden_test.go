package engine_test

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"

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

func TestDiffRenderingGolden(t *testing.T) {
	raw, err := os.ReadFile("testdata/diffs.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) == 0 {
		t.Fatal("testdata/diffs.json has no cases")
	}
	for _, c := range file.Cases {
		t.Run(c.Name, func(t *testing.T) {
			d := engine.NewDiffer(nil)
			d.Message("m", goldenMessage(t, c.Type, c.Expected, ""), goldenMessage(t, c.Type, c.Got, c.GotUnknown))
			got := [][3]string{}
			for _, x := range d.Diffs() {
				got = append(got, [3]string{x.Path, x.Expected, x.Got})
			}
			want := c.Diffs
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
		})
	}
}
