package controllers

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/internal/argocd"
)

// reasonsNeverWithReadyFalse are the API's reasons that only go with a True
// condition, or only with UpstreamIsolated, which does not gate Ready.
var reasonsNeverWithReadyFalse = map[string]bool{
	mcpv1.ReasonReady:               true,
	mcpv1.ReasonRouteAccepted:       true,
	mcpv1.ReasonDeploymentAvailable: true,
	mcpv1.ReasonAddressAssigned:     true,
	mcpv1.ReasonSettingsSynced:      true,
	mcpv1.ReasonNothingToConfigure:  true,
	mcpv1.ReasonPolicyApplied:       true,
	mcpv1.ReasonNoSelector:          true,
	mcpv1.ReasonUpstreamNotFound:    true,
}

// apiReasons reads the values of every Reason* constant declared in the API
// package's source, so that a reason added there must be classified here.
func apiReasons(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "api", "v1alpha1", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("find the API sources: %v", err)
	}
	reasons := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Reason") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: %s is not a string literal", f, name.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					reasons[name.Name] = v
				}
			}
		}
	}
	if len(reasons) < 20 {
		t.Fatalf("found only %d reason constants in api/v1alpha1; the parser missed them", len(reasons))
	}
	return reasons
}

func TestReasonTable(t *testing.T) {
	for name, value := range apiReasons(t) {
		_, inTable := readyFalseReasons[value]
		if inTable == reasonsNeverWithReadyFalse[value] {
			t.Errorf("mcpv1.%s (%q): classify it in readyFalseReasons or, if it never goes with Ready=False, in reasonsNeverWithReadyFalse (exactly one)", name, value)
		}
	}

	now := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for reason, p := range readyFalseReasons {
		t.Run(reason, func(t *testing.T) {
			if p.stalled && p.settled {
				t.Fatal("a reason cannot be both stalled and settled")
			}
			mcp := &mcpv1.McpServer{ObjectMeta: metav1.ObjectMeta{Name: "tools", Namespace: "team", Generation: 3}}
			mcp.Status.ObservedGeneration = 3
			setCondition(&mcp.Status.Conditions, 3, now, mcpv1.ConditionReady, metav1.ConditionFalse, reason, "the message")
			setProgress(&mcp.Status.Conditions, 3, now, metav1.ConditionFalse, reason, "the message")

			stalled := meta.IsStatusConditionTrue(mcp.Status.Conditions, mcpv1.ConditionStalled)
			reconciling := meta.IsStatusConditionTrue(mcp.Status.Conditions, mcpv1.ConditionReconciling)
			if stalled != p.stalled || reconciling != (!p.stalled && !p.settled) {
				t.Errorf("Stalled=%v Reconciling=%v, want Stalled=%v Reconciling=%v", stalled, reconciling, p.stalled, !p.stalled && !p.settled)
			}

			obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(mcp)
			if err != nil {
				t.Fatal(err)
			}
			status, message, err := argocd.Evaluate(argocd.Script, obj)
			if err != nil {
				t.Fatal(err)
			}
			want := argocd.StatusProgressing
			if p.stalled {
				want = argocd.StatusDegraded
			}
			if status != want || !strings.Contains(message, "the message") {
				t.Errorf("Argo CD health = %s (%q), want %s with the condition's message", status, message, want)
			}
		})
	}
}
