package engine

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// Diff is one difference between what a call expected and what it got.
type Diff struct {
	Call     int    `json:"call"`
	Path     string `json:"path"`
	Expected string `json:"expected"`
	Got      string `json:"got"`
}

// differ collects every difference of one call (it never stops at the first).
type differ struct {
	call  int
	tol   *Tolerance
	diffs []Diff
}

func (d *differ) add(path, expected, got string) {
	d.diffs = append(d.diffs, Diff{Call: d.call, Path: path, Expected: expected, Got: got})
}

// check compares one call's outcome with its expectations.
func check(call int, p *plan, out *outcome) []Diff {
	d := &differ{call: call, tol: p.call.Expect.FloatTolerance}
	e := &p.call.Expect
	code := CodeName(out.status.Code())
	if got := code; got != p.expectStatus && !slices.Contains(e.StatusAlternatives, got) {
		if msg := out.status.Message(); msg != "" { // the message says why
			got += " " + quote(msg)
		}
		d.add("status.code", p.expectStatus, got)
	}
	if early, ok := endedBeforeDeadline(p, code, out.elapsed); ok {
		d.add("status.elapsed", fmt.Sprintf("no earlier than the call's deadline (%d ms)", p.timeout.Milliseconds()),
			fmt.Sprintf("%.1f ms", float64(early.Microseconds())/1000))
	}
	if e.Message != nil && *e.Message != out.status.Message() {
		d.add("status.message", quote(*e.Message), quote(out.status.Message()))
	}
	// message_contains: the reason, where each library words it its own way (one text must appear)
	if len(e.MessageContains) > 0 && !slices.ContainsFunc(e.MessageContains, func(t string) bool {
		return strings.Contains(out.status.Message(), t)
	}) {
		d.add("status.message", "containing one of "+quote(strings.Join(e.MessageContains, " | ")), quote(out.status.Message()))
	}
	headers, trailers := e.Headers, e.Trailers
	if answeredByServer(p, code) {
		// The client was to reach its own status (refuse what arrived), and the server's answer came
		// through instead: whatever excuses that, what arrived must be what the server sent.
		d.messages("responses", p.serverSent, out.responses)
		headers, trailers = serverMetadata(p.call.Server.Headers, e.Headers), serverMetadata(p.call.Server.Trailers, e.Trailers)
	} else if p.expected != nil {
		d.messages("responses", p.expected, out.responses)
	} else if p.expectedWire != nil {
		d.wireMessages("responses_wire", p.expectedWire, out.responses)
	}
	if p.call.Protojson && code == "OK" && len(out.responses) > 0 { // the server's rendering of its first response
		d.parsedJSON("json.response", out.trailer, out.responses[0])
	}
	d.metadata("headers", headers, out.header)
	d.metadata("trailers", withoutHarnessKeys(trailers), out.trailer)
	if p.details != nil {
		d.details(p.details, out.status.Proto().GetDetails())
	}
	if p.chunkField != nil {
		d.chunks(e.Chunks, p.chunkField, out.responses)
	}
	if e.Reflection != nil {
		d.reflection(p, out)
	}
	if sc := p.call.Server; sc != nil && sc.Compression != "" && len(out.responses) > 0 {
		if out.compression != sc.Compression {
			d.add("compression", sc.Compression, out.compression)
		} else if out.uncompressed != "" { // declared in the header, but each message says for itself
			d.add("compression", sc.Compression, out.uncompressed)
		}
	}
	d.serverDiffs(out.trailer)
	confirmed := len(out.trailer.Get(ServerCheckedKey)) > 0
	if p.call.CheckedByServer && (serverAnswers(p) || answeredByServer(p, code)) && !confirmed {
		d.add("server.checked", "present", "missing")
	}
	if confirmed {
		d.serverStatus(p, out)
	}
	// A TLS connection of gRPC must have negotiated h2 (grpc-go's own check can be turned off by
	// an environment variable; this one cannot).
	if alpn, ok := tlsALPN(out.peer); p.tls && ok && alpn != h2 {
		d.add("channel.alpn", quote(h2), quote(alpn))
	}
	// A refused channel that connected anyway: its status alone could come from a server that
	// answers the expected UNAVAILABLE itself.
	if p.refused && out.peer != nil && out.peer.Addr != nil {
		d.add("channel.refused", "a refused handshake", "connected to "+out.peer.Addr.String())
	}
	return d.diffs
}

// deadlineSlack: how early a call may look to end for its deadline, as measured. The deadline is
// set after the clock starts, and a server counts its own from when the call arrives, so only the
// conversion between clocks can make it look early; a server that reads it as 10% shorter or more
// is caught.
const deadlineSlack = 0.9

// endedBeforeDeadline: the call's elapsed time when the client was to reach DEADLINE_EXCEEDED
// itself (server.status names another outcome, late) and the call ended CANCELLED or
// DEADLINE_EXCEEDED before its deadline: no timer of either side had fired (as python_impl/check.py).
func endedBeforeDeadline(p *plan, code string, elapsed time.Duration) (time.Duration, bool) {
	s := p.call.Server
	if p.expectStatus != "DEADLINE_EXCEEDED" || s == nil || s.Status == "" || s.Status == "DEADLINE_EXCEEDED" ||
		(code != "CANCELLED" && code != "DEADLINE_EXCEEDED") || elapsed <= 0 {
		return 0, false
	}
	return elapsed, float64(elapsed) < float64(p.timeout)*deadlineSlack
}

// serverAnswers: the call's final status comes from the server's catalogue, so a generic server
// answered it (and checked it), whatever the status — unless the client reaches its outcome itself.
// The case data says when: the client cancels, the method does not exist (raw), server.status
// names what the server would answer instead (a deadline, a message over a receive limit), or the
// channel is refused (the handshake fails: no server ever sees the call).
func serverAnswers(p *plan) bool {
	// a token check (require_token) always confirms, whatever server.status says; so does a code
	// outside 0-16, which no client reaches by itself: only a server sends one
	s := p.call.Server
	return !p.call.Raw && !p.refused && p.call.CancelAfterResponses == nil && p.call.CancelAfterRequests == nil &&
		(s == nil || s.Status == "" || s.RequireToken != "" || outsideCodes(s.Status))
}

// outsideCodes: a code name CODE_<n> for a number past gRPC's 0-16.
func outsideCodes(name string) bool {
	c, ok := CodeByName(name)
	return ok && int(c) >= len(codeNames)
}

// answeredByServer: server.status replaces the expected status, and the client ended with it: the
// server's own answer came through (an over-limit message or metadata a library let pass).
func answeredByServer(p *plan, got string) bool {
	s := p.call.Server
	return s != nil && s.Status != "" && s.Status != p.expectStatus && s.RequireToken == "" && got == s.Status
}

func serverMetadata(sent, expected map[string][]string) map[string][]string {
	if sent != nil {
		return sent
	}
	return expected
}

// sentStatus is the status the case tells a generic server to end the call with.
func sentStatus(p *plan) string {
	if s := p.call.Server; s != nil && s.Status != "" && s.RequireToken == "" {
		return s.Status
	}
	return p.expectStatus
}

// serverStatus compares the status the server says it sent (ServerStatusKey) with the one the
// case gives it. grpc-go's client keeps a code outside 0-16 as its number, so that number must be
// the one the server sent.
func (d *differ) serverStatus(p *plan, out *outcome) {
	sent := out.trailer.Get(ServerStatusKey)
	want := sentStatus(p)
	if len(sent) != 1 {
		d.add("server.status", want, "missing: "+quoteList(sent))
		return
	}
	if sent[0] != want {
		d.add("server.status", want, sent[0])
	}
	if got := CodeName(out.status.Code()); got != sent[0] && (outsideCodes(got) || outsideCodes(sent[0])) {
		d.add("status.code.number", sent[0]+" (sent by the server)", got)
	}
}

// withoutHarnessKeys drops the harness's own interop-* keys: they are never compared.
func withoutHarnessKeys(in map[string][]string) map[string][]string {
	out := make(map[string][]string, len(in))
	for k, v := range in {
		if !strings.HasPrefix(strings.ToLower(k), harnessKeyPrefix) {
			out[k] = v
		}
	}
	return out
}

// details compares the google.rpc.Status details of the final status with the expected ones:
// the count, then every pair both lists have, as parsed messages.
func (d *differ) details(exp, got []*anypb.Any) {
	if len(exp) != len(got) {
		d.add("details.count", strconv.Itoa(len(exp)), strconv.Itoa(len(got)))
	}
	for i := range min(len(exp), len(got)) {
		path := fmt.Sprintf("details[%d]", i)
		if exp[i].GetTypeUrl() != got[i].GetTypeUrl() {
			d.add(path+".@type", quote(exp[i].GetTypeUrl()), quote(got[i].GetTypeUrl()))
			continue
		}
		em, eerr := exp[i].UnmarshalNew()
		gm, gerr := got[i].UnmarshalNew()
		if eerr != nil || gerr != nil { // type not linked in: compare the encoded bytes
			if !bytes.Equal(exp[i].GetValue(), got[i].GetValue()) {
				d.add(path+".value", renderBytes(exp[i].GetValue()), renderBytes(got[i].GetValue()))
			}
			continue
		}
		d.message(path, em.ProtoReflect(), gm.ProtoReflect())
	}
}

// serverDiffs adds the findings a generic server sent back in its trailer.
func (d *differ) serverDiffs(trailer metadata.MD) {
	for _, v := range trailer.Get(ServerDiffsKey) {
		var found []ServerDiff
		// JSON null decodes to a nil slice without an error; a server that sends it has said
		// nothing, which is not "no findings" (the Python engine refuses it too).
		if err := json.Unmarshal([]byte(v), &found); err != nil || found == nil {
			d.add("server.diffs", "a JSON list of diffs", quote(v))
			continue
		}
		for _, f := range found {
			d.add(f.Path, f.Expected, f.Got)
		}
	}
}

// alignLimit is the most pairs compared to align two streams; past it, index by index.
const alignLimit = 10_000

// messages compares two lists of messages (the responses of a call, the requests a server read),
// as docs/peer-contract.md "Streams" says and the Python engine does (python_impl/compare.py
// diff_stream): the count, then what went missing, arrived extra or moved, each by its index and a
// short rendering, and the field differences of the messages that changed. The lists are aligned on
// their longest common subsequence of equal messages; between two aligned messages the unaligned
// ones of each side are paired in order, the rest are missing (expected index) or extra (received
// index). An unaligned expected message equal to an unaligned received one elsewhere has moved.
func (d *differ) messages(path string, exp, got []proto.Message) {
	n, m := len(exp), len(got)
	if n != m {
		d.add(path+".count", strconv.Itoa(n), strconv.Itoa(m))
	}
	equal := func(i, j int) bool {
		sub := &differ{tol: d.tol}
		sub.message("", exp[i].ProtoReflect(), got[j].ProtoReflect())
		return len(sub.diffs) == 0
	}
	same := n == m
	for i := 0; same && i < n; i++ {
		same = equal(i, i)
	}
	if same {
		return
	}
	if n*m > alignLimit {
		for i := range min(n, m) {
			d.message(fmt.Sprintf("%s[%d]", path, i), exp[i].ProtoReflect(), got[i].ProtoReflect())
		}
		return
	}
	eq := make([][]bool, n)
	lcs := make([][]int, n+1)
	for i := range n + 1 {
		lcs[i] = make([]int, m+1)
	}
	for i := range n {
		eq[i] = make([]bool, m)
		for j := range m {
			eq[i][j] = equal(i, j)
		}
	}
	// Of the longest common subsequences, the one with the most messages at their own index: a
	// reversed stream keeps its middle in place, and the rest reads as moved (never "moved" to the
	// index it already has). A pair weighs bonus (more than any number of same-index pairs), and 1
	// more at its own index.
	bonus := n + m + 1
	weight := func(i, j int) int {
		if i == j {
			return bonus + 1
		}
		return bonus
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			if eq[i][j] {
				lcs[i][j] = max(lcs[i][j], lcs[i+1][j+1]+weight(i, j))
			}
		}
	}
	type gap struct{ exp, got []int }
	gaps := []gap{{}}
	for i, j := 0, 0; i < n || j < m; {
		last := &gaps[len(gaps)-1]
		switch {
		case i < n && j < m && eq[i][j] && lcs[i][j] == lcs[i+1][j+1]+weight(i, j):
			gaps = append(gaps, gap{})
			i, j = i+1, j+1
		case j >= m || (i < n && lcs[i+1][j] >= lcs[i][j+1]):
			last.exp = append(last.exp, i)
			i++
		default:
			last.got = append(last.got, j)
			j++
		}
	}
	var freeExp, freeGot []int
	for _, g := range gaps {
		freeExp, freeGot = append(freeExp, g.exp...), append(freeGot, g.got...)
	}
	moved, taken := map[int]int{}, map[int]bool{}
	var movedOrder []int
	for _, i := range freeExp {
		for _, j := range freeGot {
			if !taken[j] && eq[i][j] {
				moved[i], taken[j] = j, true
				movedOrder = append(movedOrder, i)
				break
			}
		}
	}
	for _, g := range gaps {
		var es, gs []int
		for _, i := range g.exp {
			if _, ok := moved[i]; !ok {
				es = append(es, i)
			}
		}
		for _, j := range g.got {
			if !taken[j] {
				gs = append(gs, j)
			}
		}
		for k := range min(len(es), len(gs)) {
			d.message(fmt.Sprintf("%s[%d]", path, es[k]), exp[es[k]].ProtoReflect(), got[gs[k]].ProtoReflect())
		}
		for _, i := range es[min(len(es), len(gs)):] {
			d.add(fmt.Sprintf("%s[%d]", path, i), short(exp[i].ProtoReflect()), "<missing>")
		}
		for _, j := range gs[min(len(es), len(gs)):] {
			d.add(fmt.Sprintf("%s[%d]", path, j), "<missing>", short(got[j].ProtoReflect()))
		}
	}
	for _, i := range movedOrder { // freeExp is in ascending order
		d.add(fmt.Sprintf("%s[%d]", path, i), short(exp[i].ProtoReflect()), fmt.Sprintf("<moved to [%d]>", moved[i]))
	}
}

// shortLimit is the most code points of a message's short rendering.
const shortLimit = 80

// short renders a message in one line: its set fields in declaration order, "name: value" (values as
// diffs render them; a message "{…}", a list or map by its size "[n]"), cut at shortLimit code points.
func short(m protoreflect.Message) string {
	var parts []string
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		switch {
		case fd.IsList():
			parts = append(parts, fmt.Sprintf("%s: [%d]", fd.Name(), m.Get(fd).List().Len()))
		case fd.IsMap():
			parts = append(parts, fmt.Sprintf("%s: [%d]", fd.Name(), m.Get(fd).Map().Len()))
		case fd.Message() != nil:
			parts = append(parts, string(fd.Name())+": {…}")
		default:
			parts = append(parts, string(fd.Name())+": "+renderValue(fd, m.Get(fd)))
		}
	}
	text := []rune("{" + strings.Join(parts, ", ") + "}")
	if len(text) > shortLimit {
		return string(text[:shortLimit-1]) + "…"
	}
	return string(text)
}

// message walks every field of the message type (set or not), then the extensions set on
// either side (by field number, path "[full.name]"), then the unknown fields.
func (d *differ) message(path string, exp, got protoreflect.Message) {
	if e, g, ok := unpackBoth(exp, got); ok {
		// a packed message's bytes are not canonical (map entries come in any order): compare
		// what they carry, as the Python engine does
		d.message(path+".value", e, g)
		return
	}
	fields := exp.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		d.field(path+"."+string(fd.Name()), fd, exp, got)
	}
	for _, xd := range setExtensions(exp, got) {
		d.field(path+".["+string(xd.FullName())+"]", xd, exp, got)
	}
	// compared as rendered (field, wire type, value), as the Python engine does: an encoding
	// difference alone (a longer varint) is no difference in content
	if eu, gu := renderUnknown(exp.GetUnknown()), renderUnknown(got.GetUnknown()); eu != gu {
		d.add(path+".<unknown fields>", eu, gu)
	}
}

// unpackBoth returns the messages two google.protobuf.Any values carry, when both name the same
// type, this peer knows it, and both values decode; otherwise ok is false and the Any is compared
// field by field (type_url, then value as bytes).
func unpackBoth(exp, got protoreflect.Message) (protoreflect.Message, protoreflect.Message, bool) {
	if exp.Descriptor().FullName() != "google.protobuf.Any" {
		return nil, nil, false
	}
	fields := exp.Descriptor().Fields()
	urlField, valueField := fields.ByNumber(1), fields.ByNumber(2)
	url := exp.Get(urlField).String()
	if url == "" || url != got.Get(urlField).String() {
		return nil, nil, false
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByURL(url)
	if err != nil {
		return nil, nil, false
	}
	e, g := mt.New(), mt.New()
	if proto.Unmarshal(exp.Get(valueField).Bytes(), e.Interface()) != nil ||
		proto.Unmarshal(got.Get(valueField).Bytes(), g.Interface()) != nil {
		return nil, nil, false
	}
	return e, g, true
}

// setExtensions lists the extension fields set on any of the messages, by field number.
func setExtensions(ms ...protoreflect.Message) []protoreflect.FieldDescriptor {
	var out []protoreflect.FieldDescriptor
	seen := map[protoreflect.FullName]bool{}
	for _, m := range ms {
		m.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			if fd.IsExtension() && !seen[fd.FullName()] {
				seen[fd.FullName()] = true
				out = append(out, fd)
			}
			return true
		})
	}
	slices.SortFunc(out, func(a, b protoreflect.FieldDescriptor) int {
		if a.Number() != b.Number() {
			return int(a.Number()) - int(b.Number())
		}
		return strings.Compare(string(a.FullName()), string(b.FullName()))
	})
	return out
}

// field compares one field (or extension) of two messages: lists and maps element-wise, presence
// where the field has it, then the value.
func (d *differ) field(fp string, fd protoreflect.FieldDescriptor, exp, got protoreflect.Message) {
	switch {
	case fd.IsList():
		d.list(fp, fd, exp.Get(fd).List(), got.Get(fd).List())
	case fd.IsMap():
		d.mapField(fp, fd, exp.Get(fd).Map(), got.Get(fd).Map())
	case fd.HasPresence() && exp.Has(fd) != got.Has(fd):
		d.add(fp, renderPresent(exp, fd), renderPresent(got, fd))
	case fd.Message() != nil:
		if exp.Has(fd) {
			d.message(fp, exp.Get(fd).Message(), got.Get(fd).Message())
		}
	default:
		d.scalar(fp, fd, exp.Get(fd), got.Get(fd))
	}
}

func (d *differ) list(path string, fd protoreflect.FieldDescriptor, exp, got protoreflect.List) {
	if exp.Len() != got.Len() {
		d.add(path+".count", strconv.Itoa(exp.Len()), strconv.Itoa(got.Len()))
	}
	for j := range min(exp.Len(), got.Len()) {
		ep := fmt.Sprintf("%s[%d]", path, j)
		if fd.Message() != nil {
			d.message(ep, exp.Get(j).Message(), got.Get(j).Message())
		} else {
			d.scalar(ep, fd, exp.Get(j), got.Get(j))
		}
	}
}

func (d *differ) mapField(path string, fd protoreflect.FieldDescriptor, exp, got protoreflect.Map) {
	type entry struct {
		k    protoreflect.MapKey
		text string
	}
	var keys []entry
	seen := map[string]bool{}
	collect := func(m protoreflect.Map) {
		m.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
			t := renderKey(k)
			if !seen[t] {
				seen[t] = true
				keys = append(keys, entry{k, t})
			}
			return true
		})
	}
	collect(exp)
	collect(got)
	slices.SortFunc(keys, func(a, b entry) int { return compareKeys(a.k, b.k) })
	vd := fd.MapValue()
	for _, k := range keys {
		kp := path + "[" + k.text + "]"
		eh, gh := exp.Has(k.k), got.Has(k.k)
		switch {
		case !eh:
			d.add(kp, "<missing>", renderValue(vd, got.Get(k.k)))
		case !gh:
			d.add(kp, renderValue(vd, exp.Get(k.k)), "<missing>")
		case vd.Message() != nil:
			d.message(kp, exp.Get(k.k).Message(), got.Get(k.k).Message())
		default:
			d.scalar(kp, vd, exp.Get(k.k), got.Get(k.k))
		}
	}
}

func (d *differ) scalar(path string, fd protoreflect.FieldDescriptor, exp, got protoreflect.Value) {
	if !scalarEqual(fd.Kind(), exp, got, d.tol) {
		d.add(path, renderValue(fd, exp), renderValue(fd, got))
	}
}

func scalarEqual(k protoreflect.Kind, exp, got protoreflect.Value, tol *Tolerance) bool {
	switch k {
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return floatEqual(exp.Float(), got.Float(), tol)
	case protoreflect.BytesKind:
		return bytes.Equal(exp.Bytes(), got.Bytes())
	default:
		return exp.Interface() == got.Interface()
	}
}

// floatEqual: NaN equals NaN; exact unless a tolerance is given: |got-exp| <= abs + rel*|exp|.
func floatEqual(exp, got float64, tol *Tolerance) bool {
	if math.IsNaN(exp) || math.IsNaN(got) {
		return math.IsNaN(exp) && math.IsNaN(got)
	}
	if exp == got {
		// -0.0 == 0.0 numerically, but the sign is a value the sender chose.
		return math.Signbit(exp) == math.Signbit(got)
	}
	negZero := func(x float64) bool { return x == 0 && math.Signbit(x) }
	if tol == nil || math.IsInf(exp, 0) || math.IsInf(got, 0) || negZero(exp) || negZero(got) {
		// Infinities and -0.0 are exact values, never results of rounding: a tolerance would make
		// rel*|inf| infinite (anything matches) and let 1e-9 stand in for -0.0. (+0.0 keeps the
		// tolerance: a computed -1e-16 may stand for an expected 0.0.)
		return false
	}
	return math.Abs(got-exp) <= tol.Abs+tol.Rel*math.Abs(exp)
}

// metadata: every listed key must carry exactly the listed values, in order (subset check).
// Paths are <what>["key"] (headers, trailers, server.metadata).
func (d *differ) metadata(what string, exp map[string][]string, got metadata.MD) {
	keys := make([]string, 0, len(exp))
	for k := range exp {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		key := strings.ToLower(k)
		ev, gv := exp[k], got.Get(key)
		bin := strings.HasSuffix(key, "-bin")
		eq := len(ev) == len(gv)
		for i := 0; eq && i < len(ev); i++ {
			if bin {
				b, _ := decodeBin(ev[i]) // checked in prepare
				eq = string(b) == gv[i]
			} else {
				eq = ev[i] == gv[i]
			}
		}
		if !eq {
			shown := gv
			if bin {
				shown = make([]string, len(gv))
				for i, v := range gv {
					shown[i] = renderBytes([]byte(v))
				}
			}
			d.add(what+"["+quote(key)+"]", quoteList(ev), quoteList(shown))
		}
	}
}

// chunks: the bytes field concatenated over all responses has the expected size and SHA-256,
// and every response but the last carries exactly chunk_size bytes (when chunk_size is given).
func (d *differ) chunks(c *Chunks, fd protoreflect.FieldDescriptor, responses []proto.Message) {
	h := sha256.New()
	size := 0
	for i, r := range responses {
		b := r.ProtoReflect().Get(fd).Bytes()
		h.Write(b)
		size += len(b)
		if c.ChunkSize > 0 && i < len(responses)-1 && len(b) != c.ChunkSize {
			d.add(fmt.Sprintf("chunks[%d].size", i), strconv.Itoa(c.ChunkSize), strconv.Itoa(len(b)))
		}
	}
	if size != c.Size {
		d.add("chunks.size", strconv.Itoa(c.Size), strconv.Itoa(size))
	}
	if sum := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(sum, c.SHA256) {
		d.add("chunks.sha256", c.SHA256, sum)
	}
}

// compareKeys orders map keys by value: numbers numerically, false before true, strings by bytes
// (UTF-8 byte order is code point order).
func compareKeys(a, b protoreflect.MapKey) int {
	switch av := a.Interface().(type) {
	case bool:
		bv := b.Bool()
		switch {
		case av == bv:
			return 0
		case !av:
			return -1
		}
		return 1
	case int32, int64:
		return cmp.Compare(a.Int(), b.Int())
	case uint32, uint64:
		return cmp.Compare(a.Uint(), b.Uint())
	}
	return strings.Compare(a.String(), b.String())
}
