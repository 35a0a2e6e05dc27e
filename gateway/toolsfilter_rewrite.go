package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// edit replaces b[start:end] with repl.
type edit struct {
	start, end int
	repl       []byte
}

// rewrite filters the tools/list results in body, one JSON-RPC message or a
// batch. It returns the new body, or nil when nothing had to change, and
// whether any tools/list result was found. Every byte outside the edited
// members is kept: other messages, other fields, each kept tool object.
func (f *toolsFilter) rewrite(body []byte) (out []byte, found bool, err error) {
	if !json.Valid(body) {
		return nil, false, unfilterable("response is not valid JSON")
	}
	f.hits = f.hits[:0]
	var edits []edit
	i := skipSpace(body, 0)
	if body[i] == '[' {
		for _, el := range elementSpans(body, i) {
			var hit bool
			if edits, hit, err = f.messageEdits(body, el, edits); err != nil {
				return nil, false, err
			}
			found = found || hit
		}
	} else if edits, found, err = f.messageEdits(body, i, edits); err != nil {
		return nil, false, err
	}
	for _, j := range f.hits {
		f.answered[j] = true
	}
	if len(edits) == 0 {
		return nil, found, nil
	}
	return applyEdits(body, edits), found, nil
}

// messageEdits appends the edits of the message at b[i] when it is a
// response to a tools/list. Keys match case-insensitively and every
// duplicate counts, as some client's parser may read any of them; any
// message with a matching id and a result is taken for a response, method
// or not, since clients tell responses by their result.
func (f *toolsFilter) messageEdits(b []byte, i int, edits []edit) ([]edit, bool, error) {
	if b[i] != '{' {
		return edits, false, nil
	}
	var results []int
	match := false
	eachMember(b, i, func(key []byte, vs, ve int) {
		switch {
		case keyFolds(key, "id"):
			if !match {
				match = f.matches(b[vs:ve])
			}
		case keyFolds(key, "result"):
			results = append(results, vs)
		}
	})
	if !match {
		return edits, false, nil
	}
	found := false
	for _, r := range results {
		var hit bool
		var err error
		if edits, hit, err = f.resultEdits(b, r, edits); err != nil {
			return nil, false, err
		}
		found = found || hit
	}
	return edits, found, nil
}

// matches reports whether a response id answers one of the tools/list
// calls, and notes which.
func (f *toolsFilter) matches(id []byte) bool {
	if f.anyID {
		return true
	}
	k := idKey(id)
	hit := false
	for j, want := range f.ids {
		if want == k {
			f.hits, hit = append(f.hits, j), true
		}
	}
	return hit
}

// idKey is the form in which ids are compared: a string's decoded value, a
// number's shortest form, other values as they are. The string "1" and the
// number 1 compare equal: matching too many responses only filters more.
func idKey(raw []byte) string {
	raw = trimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		if s, ok := jsonString(raw); ok {
			return s
		}
	case c == '-' || '0' <= c && c <= '9':
		if n, err := strconv.ParseFloat(string(raw), 64); err == nil {
			return strconv.FormatFloat(n, 'g', -1, 64)
		}
	}
	return string(raw)
}

// resultEdits appends the edits of one tools/list result at b[i]: its tools
// arrays filtered and its caching fields made private (see toolsFilter). A
// result that is not an object, or has no tools (an interim result), lists
// nothing and is left alone.
func (f *toolsFilter) resultEdits(b []byte, i int, edits []edit) ([]edit, bool, error) {
	if b[i] != '{' {
		return edits, false, nil
	}
	type span struct{ start, end int }
	var tools, ttls, scopes []span
	exactScope := false
	end := i
	eachMember(b, i, func(key []byte, vs, ve int) {
		switch {
		case keyFolds(key, "tools"):
			tools = append(tools, span{vs, ve})
		case keyFolds(key, "ttlMs"):
			ttls = append(ttls, span{vs, ve})
		case keyFolds(key, "cacheScope"):
			scopes = append(scopes, span{vs, ve})
			exactScope = exactScope || keyIs(key, "cacheScope")
		}
		end = ve
	})
	if len(tools) == 0 {
		return edits, false, nil
	}
	var pending []edit
	for _, s := range tools {
		e, err := f.toolsEdit(b, s.start, s.end)
		if err != nil {
			return nil, false, err
		}
		if e != nil {
			pending = append(pending, *e)
		}
	}
	for _, s := range ttls {
		if v, ok := cappedTTL(b[s.start:s.end], f.maxTTL); ok {
			pending = append(pending, edit{s.start, s.end, v})
		}
	}
	for _, s := range scopes {
		if string(b[s.start:s.end]) != `"private"` {
			pending = append(pending, edit{s.start, s.end, []byte(`"private"`)})
		}
	}
	// NOTE: edits must stay in the order of their offsets; the members were
	// visited in order and the insertion goes at the closing brace.
	slices.SortFunc(pending, func(x, y edit) int { return x.start - y.start })
	edits = append(edits, pending...)
	if len(ttls) > 0 && !exactScope {
		closing := skipSpace(b, end)
		edits = append(edits, edit{closing, closing, []byte(`,"cacheScope":"private"`)})
	}
	return edits, true, nil
}

// toolsEdit returns the edit that drops the tools the caller may not call
// from the array at b[start:end], or nil when all may stay. Kept tools are
// copied byte for byte. Anything but an array of objects with a string name
// is refused: the filter cannot tell what a client would make of it.
func (f *toolsFilter) toolsEdit(b []byte, start, end int) (*edit, error) {
	if b[start] != '[' {
		return nil, unfilterable("result.tools is not an array")
	}
	// NOTE: one walk over the array: each tool's members are visited once,
	// which also finds where the tool ends.
	type span struct{ start, end int }
	var kept []span
	size, dropped := 1, false
	for i := skipSpace(b, start+1); i < end && b[i] != ']'; {
		ok, te, err := f.toolAllowed(b, i)
		if err != nil {
			return nil, err
		}
		if ok {
			kept = append(kept, span{i, te})
			size += te - i + 1
		} else {
			dropped = true
		}
		if i = skipSpace(b, te); i < end && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	if !dropped {
		return nil, nil
	}
	repl := make([]byte, 0, size+1)
	repl = append(repl, '[')
	for j, k := range kept {
		if j > 0 {
			repl = append(repl, ',')
		}
		repl = append(repl, b[k.start:k.end]...)
	}
	return &edit{start, end, append(repl, ']')}, nil
}

// toolAllowed reports whether the caller may call the tool object at b[i],
// and where the object ends. With several name members (duplicates, case
// variants) every one must be allowed, whichever a client reads.
func (f *toolsFilter) toolAllowed(b []byte, i int) (bool, int, error) {
	if b[i] != '{' {
		return false, 0, unfilterable("a tool is not an object")
	}
	names, allowed, bad := 0, true, false
	end := eachMember(b, i, func(key []byte, vs, ve int) {
		if !keyFolds(key, "name") {
			return
		}
		name, ok := jsonString(b[vs:ve])
		if !ok {
			bad = true
			return
		}
		names++
		allowed = allowed && f.mayCall(name)
	})
	if bad || names == 0 {
		return false, 0, unfilterable("a tool has no string name")
	}
	return allowed, end, nil
}

// cappedTTL returns the ttlMs to send instead of v when v exceeds max (or
// is not a number, which the gateway cannot judge: 0 is never wrong).
func cappedTTL(v []byte, max time.Duration) ([]byte, bool) {
	if max <= 0 {
		return nil, false
	}
	n, err := strconv.ParseFloat(string(v), 64)
	switch {
	case err != nil && !errors.Is(err, strconv.ErrRange):
		return []byte("0"), true
	case n > float64(max.Milliseconds()):
		return strconv.AppendInt(nil, max.Milliseconds(), 10), true
	}
	return nil, false
}

// errorAnswers is a JSON-RPC error for each tools/list not yet answered, as
// one message or, for a batch request, an array; nil when none is left.
func (f *toolsFilter) errorAnswers(asBatch bool) []byte {
	msgs := f.errorMessages()
	switch {
	case len(msgs) == 0:
		return nil
	case asBatch || len(msgs) > 1:
		return append(append([]byte{'['}, bytes.Join(msgs, []byte{','})...), ']')
	}
	return msgs[0]
}

// errorMessages are the JSON-RPC errors of errorAnswers, one by one.
func (f *toolsFilter) errorMessages() [][]byte {
	var msgs [][]byte
	for j, id := range f.rawIDs {
		if f.answered[j] {
			continue
		}
		var compact bytes.Buffer
		if json.Compact(&compact, id) != nil {
			compact.Reset()
			compact.WriteString("null")
		}
		msgs = append(msgs, []byte(`{"jsonrpc":"2.0","id":`+compact.String()+
			`,"error":{"code":`+strconv.Itoa(toolsListErrorCode)+`,"message":"The gateway could not filter the tool list"}}`))
	}
	return msgs
}

// applyEdits returns b with the edits, in offset order, applied.
func applyEdits(b []byte, edits []edit) []byte {
	n := len(b)
	for _, e := range edits {
		n += len(e.repl) - (e.end - e.start)
	}
	out := make([]byte, 0, n)
	last := 0
	for _, e := range edits {
		out = append(out, b[last:e.start]...)
		out = append(out, e.repl...)
		last = e.end
	}
	return append(out, b[last:]...)
}

// eachMember calls fn with the raw key (quotes included) and the value's
// offsets of every member of the object at b[i], in order, and returns the
// offset just past the object. b must be valid JSON (see jsonwalk.go).
func eachMember(b []byte, i int, fn func(key []byte, vs, ve int)) int {
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != '}' {
		keyEnd := stringEnd(b, i)
		vs := skipSpace(b, skipSpace(b, keyEnd)+1)
		ve := valueEnd(b, vs)
		fn(b[i:keyEnd], vs, ve)
		i = skipSpace(b, ve)
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return i + 1
}

// elementSpans returns the offsets at which the elements of the array at
// b[i] start.
func elementSpans(b []byte, i int) []int {
	var els []int
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] != ']' {
		els = append(els, i)
		i = skipSpace(b, valueEnd(b, i))
		if i < len(b) && b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return els
}

// keyFolds reports whether a raw JSON key decodes to want up to case, as Go's
// encoding/json matches struct fields.
func keyFolds(raw []byte, want string) bool {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return len(inner) >= len(want) && strings.EqualFold(string(inner), want)
	}
	k, _ := jsonString(raw)
	return strings.EqualFold(k, want)
}

// keyIs reports whether a raw JSON key decodes to exactly want.
func keyIs(raw []byte, want string) bool {
	k, _ := jsonString(raw)
	return k == want
}
