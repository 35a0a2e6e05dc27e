package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/mcpgate/mcpgate/broker/brokertest"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// modeOpaqueColdBroker is opaque-cold through a gateway that holds no secret
// key and verifies through the Clerk key broker (issue 20): the difference
// between the two rows is what the broker's hop adds to a verification the
// gateway has not cached.
const modeOpaqueColdBroker = "opaque-cold-broker"

// startBrokerGateway starts a gateway with a broker block and no key file,
// and, the first time, the broker it asks: a real broker.Server over TLS
// on loopback (broker/brokertest), in this process, in front of the
// emulator, with a ServiceAccount token its static authenticator knows
// (TokenReview's own cost is cached per token and is not what this row is
// about).
func (b *bench) startBrokerGateway(ctx context.Context, name, upstreamURL string) (p *process, err error) {
	br, err := b.keyBroker()
	if err != nil {
		return nil, err
	}
	return b.startGateway(ctx, name, upstreamURL, func(_ string, c *config.Config) error {
		c.Clerk.SecretKeyFile = ""
		c.Broker = &config.Broker{URL: br.URL, CAFile: br.CAFile, TokenFile: br.TokenFile}
		return nil
	})
}

// keyBroker starts the bench's broker once.
func (b *bench) keyBroker() (br *brokertest.Broker, err error) {
	if b.broker != nil {
		return b.broker, nil
	}
	tb := &driverTB{dir: b.opts.logDir}
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(driverFatal)
			if !ok {
				panic(r)
			}
			tb.cleanup()
			br, err = nil, fmt.Errorf("start the key broker: %s", f)
		}
	}()
	b.broker, b.brokerTB = brokertest.Start(tb, b.clerk), tb
	return b.broker, nil
}

// driverTB is brokertest.TB for the bench driver, which runs no test: a
// fatal error panics with driverFatal for keyBroker to recover, and the
// cleanups run when the bench closes.
type driverTB struct {
	dir string

	mu       sync.Mutex
	cleanups []func()
	errs     []string
}

type driverFatal string

func (t *driverTB) Helper() {}

func (t *driverTB) Errorf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, fmt.Sprintf(format, args...))
}

func (t *driverTB) Fatalf(format string, args ...any) {
	panic(driverFatal(fmt.Sprintf(format, args...)))
}

func (t *driverTB) TempDir() string {
	dir, err := os.MkdirTemp(t.dir, "broker-")
	if err != nil {
		panic(driverFatal(err.Error()))
	}
	return dir
}

func (t *driverTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

// cleanup runs the cleanups, last registered first, as testing does.
func (t *driverTB) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
