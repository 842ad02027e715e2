package engine

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Values in diffs are text, rendered as docs/peer-contract.md ("Diff rendering") says and
// testdata/diffs.json pins for both engines: strings quoted JSON-style, bytes as base64, floats in
// the shortest round-trip form written like Python's repr (float fields at float32 precision).

// quote writes s as the Python engine's render does, so both engines render strings alike: '"',
// '\\' and the control characters below U+0020 escaped as Python's json.dumps(s, ensure_ascii=False)
// escapes them, and also DEL, the C1 controls (U+0085 NEL among them), U+2028 and U+2029, which
// would hide in a report or break its lines. Nothing else (encoding/json would also escape <, > and &).
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || (r >= 0x7f && r < 0xa0) || r == 0x2028 || r == 0x2029 {
				fmt.Fprintf(&b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func quoteList(vs []string) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = quote(v)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func renderBytes(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// reprFloat formats like Python's repr: shortest round-trip digits, exponent form below 1e-4
// and from 1e16 on, "nan", "inf", and a ".0" on integral values.
func reprFloat(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "nan"
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	}
	e := strconv.FormatFloat(f, 'e', -1, bits)
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if f != 0 && (exp < -4 || exp >= 16) {
		return e
	}
	s := strconv.FormatFloat(f, 'f', -1, bits)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// renderValue renders one value of a field: enums by name (by number when the number has none),
// messages as "<set>" (their differences are listed field by field).
func renderValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "<set>"
	case protoreflect.StringKind:
		return quote(v.String())
	case protoreflect.BytesKind:
		return renderBytes(v.Bytes())
	case protoreflect.FloatKind:
		return reprFloat(v.Float(), 32)
	case protoreflect.DoubleKind:
		return reprFloat(v.Float(), 64)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			return string(ev.Name())
		}
		return strconv.Itoa(int(v.Enum()))
	default:
		return v.String()
	}
}

// renderPresent renders a field with explicit presence, "<unset>" when it is not set.
func renderPresent(m protoreflect.Message, fd protoreflect.FieldDescriptor) string {
	if !m.Has(fd) {
		return "<unset>"
	}
	return renderValue(fd, m.Get(fd))
}

// renderUnknown renders unknown fields in wire order as [number:wire type:value, ...]: varints and
// fixed values as unsigned decimals, length-delimited values as base64, groups as their own list.
func renderUnknown(b []byte) string {
	var parts []string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return "[" + strings.Join(append(parts, "<malformed: "+renderBytes(b)+">"), ", ") + "]"
		}
		b = b[n:]
		var kind, value string
		switch typ {
		case protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			kind, value, n = "varint", strconv.FormatUint(v, 10), m
		case protowire.Fixed32Type:
			v, m := protowire.ConsumeFixed32(b)
			kind, value, n = "fixed32", strconv.FormatUint(uint64(v), 10), m
		case protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			kind, value, n = "fixed64", strconv.FormatUint(v, 10), m
		case protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			kind, value, n = "len", renderBytes(v), m
		case protowire.StartGroupType:
			v, m := protowire.ConsumeGroup(num, b)
			kind, value, n = "group", renderUnknown(v), m
		default:
			n = -1
		}
		if n < 0 {
			return "[" + strings.Join(append(parts, "<malformed: "+renderBytes(b)+">"), ", ") + "]"
		}
		b = b[n:]
		parts = append(parts, fmt.Sprintf("%d:%s:%s", num, kind, value))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func renderKey(k protoreflect.MapKey) string {
	if s, ok := k.Interface().(string); ok {
		return quote(s)
	}
	return k.String()
}
