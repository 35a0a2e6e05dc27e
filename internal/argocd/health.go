package argocd

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Script is the Argo CD health check for McpServer, mcpserver-health.lua.
//
//go:embed mcpserver-health.lua
var Script string

// Argo CD's health statuses. A script that returns anything else is reported
// as Unknown.
const (
	StatusHealthy     = "Healthy"
	StatusProgressing = "Progressing"
	StatusDegraded    = "Degraded"
	StatusSuspended   = "Suspended"
	StatusMissing     = "Missing"
	StatusUnknown     = "Unknown"
)

// invalidHealthStatus is the message Argo CD gives a script's invalid status.
const invalidHealthStatus = "Lua returned an invalid health status"

// timeout is how long Argo CD lets a health script run.
const timeout = time.Second

// Evaluate runs a health check script on obj, an object as unstructured holds
// it, the way Argo CD does: in gopher-lua with only the package, base and table
// libraries open (Argo CD also opens a restricted os library, which the
// McpServer script does not use), obj as the global table obj, and a time
// limit of a second. It returns the status and message of the table the
// script returns. As in Argo CD, a status other than Argo CD's six becomes
// Unknown with the message "Lua returned an invalid health status".
func Evaluate(script string, obj map[string]any) (status, message string, err error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), Protect: true}, lua.LString(lib.name)); err != nil {
			return "", "", fmt.Errorf("opening Lua library %q: %w", lib.name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	l.SetContext(ctx)

	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", fmt.Errorf("running health script: %w", err)
	}

	hs, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("health script returned %s, not a table", l.Get(-1).Type())
	}
	status, err = stringField(hs, "status")
	if err != nil {
		return "", "", err
	}
	message, err = stringField(hs, "message")
	if err != nil {
		return "", "", err
	}
	switch status {
	case StatusHealthy, StatusProgressing, StatusDegraded, StatusSuspended, StatusMissing, StatusUnknown:
		return status, message, nil
	}
	return StatusUnknown, invalidHealthStatus, nil
}

// stringField reads a string field of the returned table; absent is "".
// Argo CD decodes the table into a struct of strings, so any other type is an
// error there too.
func stringField(hs *lua.LTable, name string) (string, error) {
	switch v := hs.RawGetString(name).(type) {
	case *lua.LNilType:
		return "", nil
	case lua.LString:
		return string(v), nil
	default:
		return "", fmt.Errorf("health script returned a %s %s, not a string", v.Type(), name)
	}
}

// toLua converts a JSON-like value, as unstructured holds it, to a Lua value
// the way Argo CD does: maps become tables, slices 1-based array tables,
// numbers Lua numbers. Anything else becomes nil.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case map[string]any:
		t := l.CreateTable(0, len(v))
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	case []any:
		t := l.CreateTable(len(v), 0)
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case int:
		return lua.LNumber(v)
	case int32:
		return lua.LNumber(v)
	}
	return lua.LNil
}
