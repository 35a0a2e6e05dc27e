package openapicheck

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
)

// This file turns kin-openapi's validation errors into Problems that name
// the field and the problem without dumping schemas or values.

// maxCombinatorDepth bounds how deeply failing oneOf/anyOf/allOf
// alternatives are explained.
const maxCombinatorDepth = 3

var unsupportedProperty = regexp.MustCompile(`^property "(.*)" is unsupported$`)

// schemaWalker explains schema errors for one location (a body or a parameter).
type schemaWalker struct {
	in string
	// param is the parameter name for path/query/header parameters, "" for bodies.
	param string
	// opts re-validates combinator alternatives to explain why each fails.
	opts []openapi3.SchemaValidationOption
}

func (w *schemaWalker) field(path []string) string {
	var b strings.Builder
	b.WriteString(w.param)
	for _, p := range path {
		b.WriteByte('/')
		b.WriteString(strings.ReplaceAll(strings.ReplaceAll(p, "~", "~0"), "/", "~1"))
	}
	return b.String()
}

func (w *schemaWalker) problem(path []string, note, msg string) Problem {
	if note != "" {
		msg = "[" + note + "] " + msg
	}
	return Problem{In: w.in, Field: w.field(path), Message: msg}
}

// walk explains err, found at prefix (a path into the value validated).
// note says which combinator alternatives led there.
func (w *schemaWalker) walk(err error, prefix []string, note string, depth int) []Problem {
	var se *openapi3.SchemaError
	switch e := err.(type) { //nolint:errorlint // kin-openapi returns its errors unwrapped; this walks their structure one level at a time
	case nil:
		return nil
	case openapi3.MultiError:
		var out []Problem
		for _, sub := range e {
			out = append(out, w.walk(sub, prefix, note, depth)...)
		}
		return out
	case *openapi3.SchemaError:
		se = e
	default:
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			var out []Problem
			for _, sub := range u.Unwrap() {
				out = append(out, w.walk(sub, prefix, note, depth)...)
			}
			return out
		}
		if errors.As(err, &se) && se != nil {
			break
		}
		return []Problem{w.problem(prefix, note, err.Error())}
	}

	path := append(slices.Clip(prefix), se.JSONPointer()...)
	switch se.SchemaField {
	case "required":
		return []Problem{w.problem(path, note, "required property is missing")}
	case "properties":
		if m := unsupportedProperty.FindStringSubmatch(se.Reason); m != nil {
			return []Problem{w.problem(append(path, m[1]), note,
				"property is not allowed by the schema (additionalProperties: false)")}
		}
	case "oneOf", "anyOf", "allOf":
		if se.Schema != nil && !errors.Is(se.Origin, openapi3.ErrOneOfConflict) {
			return w.explainCombinator(se, path, note, depth)
		}
	}
	msg := se.Reason
	if msg == "" && se.Origin != nil {
		msg = se.Origin.Error()
	}
	if msg == "" {
		msg = fmt.Sprintf("value does not satisfy schema keyword %q", se.SchemaField)
	}
	return []Problem{w.problem(path, note, msg)}
}

// explainCombinator reports a failed oneOf/anyOf/allOf and, for each
// alternative the value fails, why it fails.
func (w *schemaWalker) explainCombinator(se *openapi3.SchemaError, path []string, note string, depth int) []Problem {
	var alts openapi3.SchemaRefs
	switch se.SchemaField {
	case "oneOf":
		alts = se.Schema.OneOf
	case "anyOf":
		alts = se.Schema.AnyOf
	default:
		alts = se.Schema.AllOf
	}
	reason := se.Reason
	if reason == "" {
		reason = fmt.Sprintf("value does not satisfy %q", se.SchemaField)
	}
	if depth >= maxCombinatorDepth {
		return []Problem{w.problem(path, note, reason)}
	}
	// Explain each failing alternative. For oneOf/anyOf only the closest
	// alternatives (fewest problems) are shown: the others usually fail
	// merely because the value is of another kind (e.g. another "kty").
	var (
		explained [][]Problem
		failing   int
		fewest    = -1
	)
	for i, alt := range alts {
		if alt == nil || alt.Value == nil {
			continue
		}
		err := alt.Value.VisitJSON(se.Value, w.opts...)
		if err == nil {
			continue
		}
		failing++
		label := fmt.Sprintf("%s alternative %d of %d", se.SchemaField, i+1, len(alts))
		if name, ok := strings.CutPrefix(alt.Ref, "#/components/schemas/"); ok {
			label += " " + name
		}
		if note != "" {
			label = note + " > " + label
		}
		ps := w.walk(err, path, label, depth+1)
		if se.SchemaField != "allOf" {
			switch {
			case fewest >= 0 && len(ps) > fewest:
				continue
			case fewest < 0 || len(ps) < fewest:
				fewest, explained = len(ps), nil
			}
		}
		explained = append(explained, ps)
	}
	if len(explained) < failing {
		reason += fmt.Sprintf("; the closest of %d alternatives fails as follows", len(alts))
	}
	out := []Problem{w.problem(path, note, reason)}
	for _, ps := range explained {
		out = append(out, ps...)
	}
	return out
}

const contentTypePrefix = "header Content-Type has unexpected value"

// requestProblems explains an error from openapi3filter.ValidateRequest.
func (c *Checker) requestProblems(err error, contentTypes []string) []Problem {
	switch e := err.(type) { //nolint:errorlint // kin-openapi returns its errors unwrapped; this walks their structure one level at a time
	case nil:
		return nil
	case openapi3.MultiError:
		return explainEach(e, func(sub error) []Problem { return c.requestProblems(sub, contentTypes) })
	case *openapi3filter.SecurityRequirementsError:
		var out []Problem
		for _, sub := range e.Errors {
			msg := sub.Error()
			var re *openapi3filter.RequestError
			if errors.As(sub, &re) && re.Err != nil {
				msg = re.Err.Error()
			}
			out = append(out, Problem{In: "header", Field: "Authorization", Message: msg})
		}
		if len(out) == 0 {
			out = append(out, Problem{In: "header", Field: "Authorization", Message: "security requirements not met"})
		}
		return out
	case *openapi3filter.RequestError:
		return c.requestErrorProblems(e, contentTypes)
	}
	return []Problem{{In: "request", Message: err.Error()}}
}

func (c *Checker) requestErrorProblems(e *openapi3filter.RequestError, contentTypes []string) []Problem {
	if p := e.Parameter; p != nil {
		if e.Err == nil || errors.Is(e.Err, openapi3filter.ErrInvalidRequired) || errors.Is(e.Err, openapi3filter.ErrInvalidEmptyValue) {
			msg := e.Reason
			if errors.Is(e.Err, openapi3filter.ErrInvalidRequired) {
				msg = "required parameter is missing"
			} else if errors.Is(e.Err, openapi3filter.ErrInvalidEmptyValue) {
				msg = "empty value is not allowed"
			}
			return []Problem{{In: p.In, Field: p.Name, Message: msg}}
		}
		w := &schemaWalker{in: p.In, param: p.Name, opts: c.visitOpts(openapi3.VisitAsRequest())}
		return w.walk(e.Err, nil, "", 0)
	}
	if e.RequestBody != nil {
		switch {
		case errors.Is(e.Err, openapi3filter.ErrInvalidRequired):
			return []Problem{{In: "body", Message: "request body is required but missing"}}
		case strings.HasPrefix(e.Reason, contentTypePrefix):
			return []Problem{{In: "header", Field: "Content-Type",
				Message: fmt.Sprintf("%s (documented: %s)", strings.TrimPrefix(e.Reason, "header Content-Type has "), strings.Join(contentTypes, ", "))}}
		case strings.HasPrefix(e.Reason, "failed to decode"):
			return []Problem{{In: "body", Message: "cannot be decoded: " + errString(e.Err)}}
		case e.Err != nil:
			w := &schemaWalker{in: "body", opts: c.visitOpts(openapi3.VisitAsRequest())}
			return w.walk(e.Err, nil, "", 0)
		}
		return []Problem{{In: "body", Message: e.Error()}}
	}
	if e.Err != nil && strings.Contains(e.Err.Error(), "request body not allowed") {
		return []Problem{{In: "body", Message: "the operation documents no request body, but one was sent"}}
	}
	return []Problem{{In: "request", Message: e.Error()}}
}

// responseProblems explains an error from openapi3filter.ValidateResponse.
func (c *Checker) responseProblems(err error, contentTypes []string) []Problem {
	switch e := err.(type) { //nolint:errorlint // kin-openapi returns its errors unwrapped; this walks their structure one level at a time
	case nil:
		return nil
	case openapi3.MultiError:
		return explainEach(e, func(sub error) []Problem { return c.responseProblems(sub, contentTypes) })
	case *openapi3filter.ResponseError:
		switch {
		case strings.HasPrefix(e.Reason, "response "+contentTypePrefix):
			return []Problem{{In: "header", Field: "Content-Type",
				Message: fmt.Sprintf("%s (documented: %s)", strings.Replace(strings.TrimPrefix(e.Reason, "response header Content-Type has "), "value: ", "value ", 1), strings.Join(contentTypes, ", "))}}
		case strings.HasPrefix(e.Reason, "failed to decode") && errors.Is(e.Err, io.EOF):
			return []Problem{{In: "body", Message: "body is empty, but the spec documents one (" + strings.Join(contentTypes, ", ") + ")"}}
		case strings.HasPrefix(e.Reason, "failed to decode"):
			return []Problem{{In: "body", Message: "cannot be decoded: " + errString(e.Err)}}
		case strings.HasPrefix(e.Reason, "response body doesn't match schema"):
			w := &schemaWalker{in: "body", opts: c.visitOpts(openapi3.VisitAsResponse())}
			return w.walk(e.Err, nil, "", 0)
		case strings.HasPrefix(e.Reason, "response header"):
			return []Problem{{In: "header", Message: e.Error()}}
		}
		return []Problem{{In: "response", Message: e.Error()}}
	}
	return []Problem{{In: "response", Message: err.Error()}}
}

// explainEach explains the errors of a MultiError one by one.
func explainEach(errs openapi3.MultiError, explain func(error) []Problem) []Problem {
	var out []Problem
	for _, sub := range errs {
		out = append(out, explain(sub)...)
	}
	return out
}

func (c *Checker) visitOpts(extra ...openapi3.SchemaValidationOption) []openapi3.SchemaValidationOption {
	opts := append([]openapi3.SchemaValidationOption{openapi3.MultiErrors()}, c.schemaOpts...)
	return append(opts, extra...)
}

func errString(err error) string {
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// contentTypesOf lists the media types documented in content.
func contentTypesOf(content openapi3.Content) []string {
	out := make([]string, 0, len(content))
	for k := range content {
		out = append(out, k)
	}
	slices.Sort(out)
	if len(out) == 0 {
		out = append(out, "none")
	}
	return out
}

// requestContentTypes lists the media types documented for a request body.
func requestContentTypes(op *openapi3.Operation) []string {
	if op.RequestBody == nil || op.RequestBody.Value == nil {
		return []string{"none"}
	}
	return contentTypesOf(op.RequestBody.Value.Content)
}

// responseContentTypes lists the media types documented for a response status.
func responseContentTypes(op *openapi3.Operation, status int) []string {
	if op.Responses == nil {
		return []string{"none"}
	}
	ref := op.Responses.Status(status)
	if ref == nil {
		ref = op.Responses.Default()
	}
	if ref == nil || ref.Value == nil {
		return []string{"none"}
	}
	return contentTypesOf(ref.Value.Content)
}
