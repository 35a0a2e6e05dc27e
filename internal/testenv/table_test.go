package testenv

import (
	"reflect"
	"testing"
)

func TestTableRow(t *testing.T) {
	out := `NAME    URL                          READY   ACCESS   AGE
first   https://a.example.com/mcp    True    Open     5s
second  https://b.example.com/mcp    False   Open     2s
broken  only-two
`
	for _, tc := range []struct {
		name string
		want map[string]string
		ok   bool
	}{
		{"second", map[string]string{"NAME": "second", "URL": "https://b.example.com/mcp", "READY": "False", "ACCESS": "Open", "AGE": "2s"}, true},
		{"first", map[string]string{"NAME": "first", "URL": "https://a.example.com/mcp", "READY": "True", "ACCESS": "Open", "AGE": "5s"}, true},
		{"broken", nil, false},
		{"missing", nil, false},
	} {
		got, ok := TableRow(out, tc.name)
		if ok != tc.ok || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("TableRow(%q) = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := TableRow("NAME AGE\n", "x"); ok {
		t.Errorf("TableRow of a header alone found a row")
	}
}
