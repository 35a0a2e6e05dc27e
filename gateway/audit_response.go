package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// auditWriter records a response's status, size and, for JSON and event
// streams, its first bytes, in which the audit looks for a JSON-RPC error.
// Like statusWriter it passes Flush through and unwraps.
type auditWriter struct {
	http.ResponseWriter
	ri     *requestInfo
	status int
	bytes  int64
	// head is the response's first auditResponseHead bytes, kept when it
	// is JSON or an event stream answering a parsed request; headFull is
	// set when head is the whole response.
	head     []byte
	keep     bool
	decided  bool
	headFull bool
}

func (w *auditWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *auditWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if !w.decided {
		w.decided = true
		w.keep = w.ri.rpc != nil && mediaType(w.Header().Get("Content-Type")) != ""
		w.headFull = w.keep
	}
	if w.keep {
		if room := auditResponseHead - len(w.head); room >= len(b) {
			w.head = append(w.head, b...)
		} else {
			w.head = append(w.head, b[:max(room, 0)]...)
			w.keep, w.headFull = false, false
		}
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *auditWriter) Flush() {
	// NOTE: the proxy flushes every chunk; a direct call spares a
	// ResponseController per flush when the writer below can flush.
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *auditWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// The media types whose responses the audit reads for a JSON-RPC error.
const (
	mediaJSON   = "application/json"
	mediaStream = "text/event-stream"
)

// mediaType is contentType's media type when it is JSON or an event
// stream, else empty. It is on every audited response, so it does without
// mime.ParseMediaType's parameter map: the parameters do not matter here.
func mediaType(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	switch {
	case strings.EqualFold(mt, mediaJSON):
		return mediaJSON
	case strings.EqualFold(mt, mediaStream):
		return mediaStream
	}
	return ""
}

// countingBody counts the request body bytes read through it.
type countingBody struct {
	io.ReadCloser
	n *int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	*b.n += int64(n)
	return n, err
}

// rpcErrors are the JSON-RPC error codes of a response, by the compact
// JSON of the id they answer ("null" for an error without one).
type rpcErrors map[string]int

// of is the error code answering id; for a request without an id, the
// one answering null.
func (e rpcErrors) of(id json.RawMessage) *int {
	key := "null"
	if id != nil {
		key = string(id)
	}
	if c, ok := e[key]; ok {
		return &c
	}
	return nil
}

// rpcErrorCodes reads the JSON-RPC errors of a response's head: a JSON
// body (one response or a batch) when head holds all of it, or the
// complete data events of an event stream's head.
func rpcErrorCodes(contentType string, head []byte, full bool) rpcErrors {
	// Most responses are results: no error member, nothing to decode.
	if !bytes.Contains(head, []byte(`"error"`)) {
		return nil
	}
	errs := rpcErrors{}
	switch mediaType(contentType) {
	case mediaJSON:
		if full {
			errs.add(head)
		}
	case mediaStream:
		for len(head) > 0 {
			event, rest, ok := bytes.Cut(head, []byte("\n\n"))
			if !ok {
				break // an event the head holds only part of
			}
			head = rest
			for line := range bytes.SplitSeq(event, []byte("\n")) {
				if data, ok := bytes.CutPrefix(line, []byte("data:")); ok {
					errs.add(bytes.TrimSpace(data))
				}
			}
		}
	}
	return errs
}

// add notes the errors of one JSON-RPC response or batch of them.
func (e rpcErrors) add(data []byte) {
	type response struct {
		ID    json.RawMessage `json:"id"`
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	data = bytes.TrimSpace(data)
	var all []response
	if len(data) > 0 && data[0] == '[' {
		if json.Unmarshal(data, &all) != nil {
			return
		}
	} else {
		var one response
		if json.Unmarshal(data, &one) != nil {
			return
		}
		all = []response{one}
	}
	for _, r := range all {
		if r.Error == nil {
			continue
		}
		key := "null"
		if id := replyID(r.ID); id != nil {
			var b bytes.Buffer
			if json.Compact(&b, id) == nil {
				key = b.String()
			}
		}
		e[key] = r.Error.Code
	}
}
