package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/internal/syncbuf"
)

// firstLine is a command's stdout: it keeps the first line, the JSON line
// that says where the command listens, and passes the rest on.
type firstLine struct {
	mu   sync.Mutex
	line []byte
	done chan struct{} // closed when line is complete
	rest io.Writer
}

func newFirstLine(rest io.Writer) *firstLine {
	return &firstLine{done: make(chan struct{}), rest: rest}
}

func (w *firstLine) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
		return w.rest.Write(p)
	default:
	}
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		w.line = append(w.line, p...)
		return len(p), nil
	}
	w.line = append(w.line, p[:i+1]...)
	close(w.done)
	if _, err := w.rest.Write(p[i+1:]); err != nil {
		return i + 1, err
	}
	return len(p), nil
}

// decode waits for the line and decodes it into v, refusing unknown
// fields. It fails the test when exited is closed first, or no line comes
// within a minute; logs go into the message.
func (w *firstLine) decode(t testing.TB, name string, exited <-chan struct{}, logs *syncbuf.Buffer, v any) {
	t.Helper()
	select {
	case <-w.done:
	case <-exited:
		select {
		case <-w.done: // the line came just before the exit
		default:
			t.Fatalf("%s exited without printing its line\noutput (last lines):\n%s", name, LastLines(logs.String(), 40))
		}
	case <-time.After(time.Minute):
		t.Fatalf("%s printed no line within a minute\noutput (last lines):\n%s", name, LastLines(logs.String(), 40))
	}
	w.mu.Lock()
	line := w.line
	w.mu.Unlock()
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: the line %q: %v", name, line, err)
	}
}
