package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
)

// sseRewriter filters a text/event-stream as it passes. Lines outside an
// event's data pass at once; from an event's first data line on, its lines
// are held (bounded) until the blank line that dispatches it, since only
// then is its message complete. The event then goes out byte for byte, or,
// when it is a tools/list result that changed, with its data lines
// replaced and its other lines kept. Lines end in CRLF, LF or a lone CR, as
// the SSE standard has it; a client splits on all three, so must the filter.
type sseRewriter struct {
	f     *toolsFilter
	out   io.Writer
	limit int

	line    []byte // the current line so far, when it spans writes
	started bool   // the first line has been seen (a BOM may lead it)
	cr      bool   // the last line ended in CR: an LF next belongs to it
	// nonMessage: the event has an event type other than "message".
	nonMessage bool
	holding    bool
	held       []byte     // the held lines, terminators included
	lines      []heldLine // where each held line is in held
	data       []byte     // the event's data buffer
}

// heldLine is one line of held; data marks a data field.
type heldLine struct {
	start, end int
	data       bool
}

// utf8BOM may lead a stream; parsers drop it before the first line.
const utf8BOM = "\xef\xbb\xbf"

// write takes the next bytes of the stream. An error means the stream
// cannot be filtered any further; nothing of the offending event was sent.
func (s *sseRewriter) write(p []byte) error {
	for len(p) > 0 {
		if s.cr {
			s.cr = false
			if p[0] == '\n' {
				if err := s.emit(p[:1]); err != nil {
					return err
				}
				p = p[1:]
				continue
			}
		}
		i := bytes.IndexAny(p, "\r\n")
		if i < 0 {
			if len(s.line)+len(p)+len(s.held)+len(s.data) > s.limit {
				return unfilterable("SSE event larger than " + strconv.Itoa(s.limit) + " bytes")
			}
			s.line = append(s.line, p...)
			return nil
		}
		n := i + 1
		if p[i] == '\r' {
			if i+1 == len(p) {
				s.cr = true
			} else if p[i+1] == '\n' {
				n++
			}
		}
		raw, content := p[:n], p[:i]
		if len(s.line) > 0 {
			s.line = append(s.line, raw...)
			raw, content = s.line, s.line[:len(s.line)-(n-i)]
		}
		if err := s.handleLine(content, raw); err != nil {
			return err
		}
		s.line = s.line[:0]
		p = p[n:]
	}
	return nil
}

// emit sends b on, or adds it to the held event (to its last line).
func (s *sseRewriter) emit(b []byte) error {
	if s.holding {
		s.held = append(s.held, b...)
		s.lines[len(s.lines)-1].end = len(s.held)
		return nil
	}
	_, err := s.out.Write(b)
	return err
}

// handleLine interprets one line (content, without its terminator; raw,
// with it) the way an EventSource parser does.
func (s *sseRewriter) handleLine(content, raw []byte) error {
	if !s.started {
		s.started = true
		content = bytes.TrimPrefix(content, []byte(utf8BOM))
	}
	if len(content) == 0 {
		return s.dispatch(raw)
	}
	isData := false
	if content[0] != ':' { // not a comment
		name, value, _ := bytes.Cut(content, []byte{':'})
		value = bytes.TrimPrefix(value, []byte{' '})
		switch string(name) {
		case "data":
			isData = true
			s.data = append(append(s.data, value...), '\n')
		case "event":
			s.nonMessage = len(value) > 0 && string(value) != "message"
		}
	}
	if isData && !s.holding {
		s.holding = true
	}
	if !s.holding {
		_, err := s.out.Write(raw)
		return err
	}
	s.lines = append(s.lines, heldLine{start: len(s.held), end: len(s.held) + len(raw), data: isData})
	s.held = append(s.held, raw...)
	if len(s.held)+len(s.data) > s.limit {
		return unfilterable("SSE event larger than " + strconv.Itoa(s.limit) + " bytes")
	}
	return nil
}

// dispatch ends an event at its blank line raw: the held event goes out,
// filtered when it is a tools/list result.
func (s *sseRewriter) dispatch(raw []byte) error {
	if !s.holding {
		s.nonMessage = false
		_, err := s.out.Write(raw)
		return err
	}
	defer s.reset()
	msg := s.data[:len(s.data)-1] // the data buffer ends in the LF of its last line
	var repl []byte
	switch {
	case len(trimSpace(msg)) == 0:
		// No message (a priming event for resumption).
	case s.nonMessage && !json.Valid(msg):
		// Not JSON, and not an event MCP clients read as a message.
	default:
		var err error
		if repl, _, err = s.f.rewrite(msg); err != nil {
			return err
		}
	}
	if repl != nil {
		s.held = s.replaceData(repl)
	}
	_, err := s.out.Write(append(s.held, raw...))
	return err
}

// replaceData returns the held event with its data lines replaced by data
// lines carrying msg; the other lines stay where they were, and the new
// data lines take the first one's place and line ending.
func (s *sseRewriter) replaceData(msg []byte) []byte {
	out := make([]byte, 0, len(s.held)+len(msg)-len(s.data)+16)
	done := false
	for _, l := range s.lines {
		line := s.held[l.start:l.end]
		if !l.data {
			out = append(out, line...)
			continue
		}
		if done {
			continue
		}
		done = true
		eol := line[len(bytes.TrimRight(line, "\r\n")):]
		for seg := range bytes.SplitSeq(msg, []byte{'\n'}) {
			out = append(out, "data: "...)
			out = append(out, seg...)
			out = append(out, eol...)
		}
	}
	return out
}

func (s *sseRewriter) reset() {
	s.holding, s.nonMessage = false, false
	s.held, s.lines, s.data = s.held[:0], s.lines[:0], s.data[:0]
}
