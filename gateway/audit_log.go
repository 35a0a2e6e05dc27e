package gateway

import (
	"io"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// auditLog queues encoded records for one writer goroutine.
type auditLog struct {
	out     io.Writer
	queue   chan []byte
	dropped prometheus.Counter
	// pending counts records enqueued and not yet written (or given up),
	// so that flush knows when the queue is empty.
	pending atomic.Int64
}

// newAuditLog starts the writer of records to out.
func newAuditLog(out io.Writer, buffer int, dropped prometheus.Counter) *auditLog {
	a := &auditLog{out: out, queue: make(chan []byte, buffer), dropped: dropped}
	go a.run()
	return a
}

// enqueue hands a record to the writer without waiting: a full queue drops
// it and counts the drop.
func (a *auditLog) enqueue(line []byte) {
	a.pending.Add(1)
	select {
	case a.queue <- line:
	default:
		a.pending.Add(-1)
		a.dropped.Inc()
	}
}

// run writes the queued records. Each Write holds whole records only, so
// no record is ever split or mixed with another. It never returns: the
// gateway writes records as long as its process lives.
func (a *auditLog) run() {
	buf := make([]byte, 0, auditWriteBytes)
	for line := range a.queue {
		// NOTE: a moment's wait lets the records of concurrent requests
		// gather in the queue without waking this goroutine for each:
		// one wake-up and one write per moment under load, not per record.
		time.Sleep(auditLinger)
		buf = append(buf[:0], line...)
		n := int64(1)
		for more := true; more; {
			select {
			case line = <-a.queue:
				if len(buf)+len(line) > auditWriteBytes {
					buf, n = a.write(buf, n), 0
				}
				buf = append(buf, line...)
				n++
			default:
				more = false
			}
		}
		buf = a.write(buf, n)
	}
}

// write writes buf, n records, and returns it emptied for reuse. Records
// whose Write failed count as dropped.
func (a *auditLog) write(buf []byte, n int64) []byte {
	if _, err := a.out.Write(buf); err != nil {
		a.dropped.Add(float64(n))
	}
	a.pending.Add(-n)
	if cap(buf) > 4*auditWriteBytes {
		return make([]byte, 0, auditWriteBytes) // a huge record's buffer is not kept
	}
	return buf[:0]
}

// flush waits, at most timeout, until every record enqueued so far is
// written, and reports whether it was.
func (a *auditLog) flush(timeout time.Duration) bool {
	if a == nil {
		return true
	}
	deadline := time.Now().Add(timeout)
	for a.pending.Load() > 0 {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
