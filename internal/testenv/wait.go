package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Eventually calls check every interval until it reports done, and fails
// t with check's last error once timeout has passed or ctx has ended.
func Eventually(t testing.TB, ctx context.Context, what string, timeout, interval time.Duration, check func() (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		done, err := check()
		if done {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("%s: gave up: %v (last error: %v)", what, context.Cause(ctx), last)
		case <-tick.C:
		}
	}
}

// DecodeObjects splits a stream of YAML or JSON documents, such as a
// rendered chart, into objects, skipping empty documents.
func DecodeObjects(manifest []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("decode document %d: %w", len(objs)+1, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}
