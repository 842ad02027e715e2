package engine

import (
	"encoding/json"
	"fmt"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"
)

// Catalogue is what a generic server answers from (contract v2): the cases of a client input
// document, by name. Only "cases" is read.
type Catalogue struct {
	cases map[string]*catCase
}

type catCase struct {
	name  string
	calls []*servedCall
	err   error // the case is not valid; calls for it are answered FAILED_PRECONDITION
}

// servedCall is one call of a catalogue case, checked and ready for the generic server. Requests
// and responses stay JSON: they are parsed into the method's own types when the call comes.
type servedCall struct {
	caseName string
	index    int
	call     *Call
	header   metadata.MD
	trailer  metadata.MD
	code     codes.Code
	details  []*anypb.Any
	// detailsStatus: server.details_status, sent as grpc-status-details-bin instead of details
	detailsStatus *spb.Status
	// channel: the case's channel, normalized (nil: none; the connection is not checked)
	channel *Channel
	// server.requests_wire and server.responses_wire, decoded (wire.go)
	requestsWire, responsesWire [][]byte
	err                         error // the call is not valid
}

// LoadCatalogue parses a catalogue document. A malformed document is an error; a malformed case is
// kept and reported to the calls that use it.
func LoadCatalogue(doc []byte) (*Catalogue, error) {
	var in struct {
		Cases []json.RawMessage `json:"cases"`
	}
	if err := json.Unmarshal(doc, &in); err != nil {
		return nil, fmt.Errorf("catalogue is not valid JSON: %v", err)
	}
	cat := &Catalogue{cases: map[string]*catCase{}}
	for i, raw := range in.Cases {
		cc := &catCase{}
		c, err := parseCase(raw)
		if err != nil {
			var named struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(raw, &named)
			cc.name, cc.err = named.Name, fmt.Errorf("case is not valid: %v", err)
		} else {
			cc.name = c.Name
			var channel *Channel
			if c.Channel != nil {
				ch, err := c.Channel.normalized()
				if err != nil {
					cc.err = fmt.Errorf("case is not valid: %v", err)
				}
				channel = &ch
			}
			for j := range c.Calls {
				sc := serveCall(c.Name, j, &c.Calls[j])
				sc.channel = channel
				cc.calls = append(cc.calls, sc)
			}
		}
		if cc.name == "" {
			return nil, fmt.Errorf("catalogue case %d has no name", i)
		}
		if _, dup := cat.cases[cc.name]; dup {
			return nil, fmt.Errorf("catalogue has two cases named %q", cc.name)
		}
		cat.cases[cc.name] = cc
	}
	return cat, nil
}

// Len is the number of cases.
func (c *Catalogue) Len() int {
	if c == nil {
		return 0
	}
	return len(c.cases)
}

// lookup finds a case by the interop-case value it arrived with (percent-decoded when the client
// had to escape it, as the Go client does for non-ASCII names).
func (c *Catalogue) lookup(name string) *catCase {
	if c == nil {
		return nil
	}
	if cc, ok := c.cases[name]; ok {
		return cc
	}
	if strings.Contains(name, "%") {
		if dec, err := url.PathUnescape(name); err == nil {
			return c.cases[dec]
		}
	}
	return nil
}

// serveCall checks a catalogue call with the client's own rules (validateCall).
func serveCall(name string, i int, c *Call) *servedCall {
	sc := &servedCall{caseName: name, index: i, call: c, code: codes.OK}
	v, err := validateCall(c)
	if err != nil {
		sc.err = fmt.Errorf("case %s call %d is not valid: %v", name, i, err)
		return sc
	}
	// server.status, when given, replaces expect.status: the client must reach its expected
	// status on its own (cancel, deadline), so a client that does not cannot pass.
	sc.header, sc.trailer, sc.code, sc.details = v.header, v.trailer, v.serverCode, v.details
	sc.detailsStatus = v.detailsStatus
	sc.requestsWire, sc.responsesWire = v.serverRequestsWire, v.serverResponsesWire
	return sc
}
