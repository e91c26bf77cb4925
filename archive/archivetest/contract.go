package archivetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"
)

// Contract checks events against an AsyncAPI 3 document: the subject must
// be a channel's address, the headers and the payload must fit the JSON
// Schemas of one of that channel's messages, and the customer in the
// subject must be the event's.
type Contract struct {
	channels []channel
}

type channel struct {
	name    string
	address *regexp.Regexp // the address with each {parameter} as a group
	params  []string
	msgs    []message
}

type message struct {
	name             string
	headers, payload *jsonschema.Schema
}

// NewContract reads an AsyncAPI 3 document (YAML or JSON) and compiles the
// schemas of every channel's messages. Its schemas are JSON Schema draft 7
// (the AsyncAPI schema format's base); formats such as date-time are
// asserted.
func NewContract(doc []byte) (*Contract, error) {
	var raw any
	if err := yaml.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("asyncapi: %w", err)
	}
	// Through JSON, so the schema compiler gets JSON's types.
	js, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("asyncapi: %w", err)
	}
	tree, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
	if err != nil {
		return nil, fmt.Errorf("asyncapi: %w", err)
	}
	root, _ := tree.(map[string]any)
	if v, _ := root["asyncapi"].(string); !strings.HasPrefix(v, "3.") {
		return nil, fmt.Errorf("asyncapi: version %q, want 3.x", v)
	}
	const url = "mem://asyncapi.json"
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	if err := c.AddResource(url, tree); err != nil {
		return nil, fmt.Errorf("asyncapi: %w", err)
	}
	compile := func(ref any) (*jsonschema.Schema, error) {
		m, _ := ref.(map[string]any)
		r, _ := m["$ref"].(string)
		if !strings.HasPrefix(r, "#/") {
			return nil, fmt.Errorf("schema must be a local $ref, not %v", ref)
		}
		return c.Compile(url + r)
	}
	channels, _ := root["channels"].(map[string]any)
	if len(channels) == 0 {
		return nil, errors.New("asyncapi: no channels")
	}
	var out Contract
	for name, v := range channels {
		ch, _ := v.(map[string]any)
		addr, _ := ch["address"].(string)
		cc := channel{name: name}
		// Each {parameter} is one subject token.
		pattern, last := "^", 0
		for _, m := range paramRE.FindAllStringSubmatchIndex(addr, -1) {
			pattern += regexp.QuoteMeta(addr[last:m[0]]) + `([^.*> ]+)`
			cc.params = append(cc.params, addr[m[2]:m[3]])
			last = m[1]
		}
		if cc.address, err = regexp.Compile(pattern + regexp.QuoteMeta(addr[last:]) + "$"); err != nil {
			return nil, fmt.Errorf("asyncapi: channel %s: %w", name, err)
		}
		msgs, _ := ch["messages"].(map[string]any)
		for mname, mv := range msgs {
			msg, err := resolve(root, mv)
			if err != nil {
				return nil, fmt.Errorf("asyncapi: channel %s message %s: %w", name, mname, err)
			}
			m := message{name: mname}
			if m.payload, err = compile(msg["payload"]); err != nil {
				return nil, fmt.Errorf("asyncapi: channel %s message %s payload: %w", name, mname, err)
			}
			if h, ok := msg["headers"]; ok {
				if m.headers, err = compile(h); err != nil {
					return nil, fmt.Errorf("asyncapi: channel %s message %s headers: %w", name, mname, err)
				}
			}
			cc.msgs = append(cc.msgs, m)
		}
		if len(cc.msgs) == 0 {
			return nil, fmt.Errorf("asyncapi: channel %s has no messages", name)
		}
		out.channels = append(out.channels, cc)
	}
	return &out, nil
}

var paramRE = regexp.MustCompile(`\{([^}]+)\}`)

// resolve follows a local $ref to the object it names.
func resolve(root map[string]any, v any) (map[string]any, error) {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m, nil
	}
	var cur any = root
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		obj, _ := cur.(map[string]any)
		if cur = obj[tok]; cur == nil {
			return nil, fmt.Errorf("unresolved $ref %s", ref)
		}
	}
	out, ok := cur.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("$ref %s is not an object", ref)
	}
	return out, nil
}

// Validate checks one event as it was published: its subject, its headers
// (first value of each) and its body. It returns the name of the message
// it matched.
func (c *Contract) Validate(subject string, headers map[string][]string, body []byte) (string, error) {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("event on %s is not JSON: %w", subject, err)
	}
	hdr := map[string]any{}
	for k, v := range headers {
		if len(v) > 0 {
			hdr[k] = v[0]
		}
	}
	for _, ch := range c.channels {
		m := ch.address.FindStringSubmatch(subject)
		if m == nil {
			continue
		}
		data, _ := inst.(map[string]any)["data"].(map[string]any)
		for i, p := range ch.params {
			if p == "customer" && data["customer"] != m[i+1] {
				return "", fmt.Errorf("subject %s is customer %q, the event's data says %v", subject, m[i+1], data["customer"])
			}
		}
		var errs []error
		for _, msg := range ch.msgs {
			err := msg.payload.Validate(inst)
			if err == nil && msg.headers != nil {
				err = msg.headers.Validate(hdr)
			}
			if err == nil {
				return msg.name, nil
			}
			errs = append(errs, fmt.Errorf("message %s: %w", msg.name, err))
		}
		return "", fmt.Errorf("event on %s fits no message of channel %s: %w", subject, ch.name, errors.Join(errs...))
	}
	return "", fmt.Errorf("subject %s is no channel of the document", subject)
}

// RawEvent is one message of the stream as it was stored.
type RawEvent struct {
	Subject string
	Header  map[string][]string
	Data    []byte
}

// ReadStream returns every message of the stream stream on subjects
// matching filter (e.g. "mailgate.>"), in order.
func ReadStream(ctx context.Context, js jetstream.JetStream, stream, filter string) ([]RawEvent, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", stream, err)
	}
	var out []RawEvent
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			return nil, fmt.Errorf("read stream %s: %w", stream, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			out = append(out, RawEvent{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		}
		if n == 0 {
			return out, nil // FetchNoWait: nothing more stored
		}
	}
}
