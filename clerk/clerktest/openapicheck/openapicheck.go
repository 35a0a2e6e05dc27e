// Package openapicheck validates HTTP requests and responses against Clerk's
// published Backend API OpenAPI document (bapi-2026-05-12.yml).
//
// Tests use it to prove that every response the Clerk emulator
// (clerk/clerktest) produces, and every request the Clerk client (clerk)
// sends, conforms to the spec field by field:
//
//	c := openapicheck.Load(t) // skips the test when the spec is not available
//	if err := c.ValidateRequest(req, body); err != nil { t.Error(err) }
//	if err := c.ValidateResponse(req, status, header, respBody); err != nil { t.Error(err) }
//
// Operations are matched by the path after the spec's server base path
// ("/v1"), so requests aimed at any host and at any base path ending in /v1
// (http://127.0.0.1:4321/v1/jwks, https://api.clerk.com/v1/jwks) are checked.
//
// What is checked:
//
//   - the method and path name a documented operation;
//   - path and query parameters are declared and match their schemas, and
//     query parameters the operation does not declare are rejected;
//   - the bearer security requirement: an "Authorization: Bearer <token>"
//     header with any non-empty token satisfies it (no real key is needed);
//   - the request body: presence when required, Content-Type, JSON syntax and
//     schema (types, required properties, additionalProperties, enum,
//     pattern, nullable, ...); a body sent to an operation that declares none
//     is rejected;
//   - the response status is documented for the operation (explicitly, by a
//     "4XX"-style range or by "default");
//   - documented response headers, the response Content-Type and the response
//     body against the schema documented for that status.
//
// Error messages name the operation, the offending field and the problem,
// and never contain the Authorization header value.
package openapicheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Checker validates requests and responses against the Clerk Backend API
// spec. It is immutable once built and safe for concurrent use.
type Checker struct {
	specPath string
	// basePath is the path of the spec's first server URL ("/v1"); request
	// paths are matched against operations by what follows it.
	basePath string
	doc      *openapi3.T
	router   routers.Router
	// loadTime is how long New took (parse, validate, build the router).
	loadTime time.Duration
	// schemaOpts are the document-scoped schema validation options.
	schemaOpts []openapi3.SchemaValidationOption
}

// New parses and validates the OpenAPI document at specPath and prepares a
// Checker for it. It does not cache; Load does.
func New(specPath string) (*Checker, error) {
	start := time.Now()
	loader := openapi3.NewLoader()
	loader.IsExternalRefsAllowed = false
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		return nil, fmt.Errorf("openapicheck: loading %s: %w", specPath, err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, fmt.Errorf("openapicheck: %s is not a valid OpenAPI document: %w", specPath, err)
	}
	basePath := ""
	if len(doc.Servers) > 0 && doc.Servers[0] != nil {
		u, err := url.Parse(doc.Servers[0].URL)
		if err != nil {
			return nil, fmt.Errorf("openapicheck: %s: server URL %q: %w", specPath, doc.Servers[0].URL, err)
		}
		basePath = strings.TrimSuffix(u.Path, "/")
	}
	// The checker strips the base path itself so that any host and any
	// prefix ending in the base path matches; the router then sees bare
	// operation paths.
	doc.Servers = nil
	router, err := legacy.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapicheck: %s: building router: %w", specPath, err)
	}
	return &Checker{
		specPath:   specPath,
		basePath:   basePath,
		doc:        doc,
		router:     router,
		schemaOpts: doc.GetSchemaValidationOptions(),
		loadTime:   time.Since(start),
	}, nil
}

// SpecPath returns the path of the OpenAPI document the Checker was built from.
func (c *Checker) SpecPath() string { return c.specPath }

// Problem is one way in which a request or response departs from the spec.
type Problem struct {
	// In is where the problem is: "route", "path", "query", "header",
	// "body" or "status" ("request" or "response" for anything else).
	In string
	// Field names the offending item: a parameter or header name, or for
	// "body" a JSON pointer into the body ("" is the whole body,
	// "/keys/0/kty" a nested field).
	Field string
	// Message describes the problem. It never contains the Authorization
	// header value.
	Message string
}

func (p Problem) String() string {
	switch {
	case p.In == "body" && p.Field == "":
		return "body: " + p.Message
	case p.In == "body":
		return fmt.Sprintf("body field %q: %s", p.Field, p.Message)
	case p.In == "query" || p.In == "path":
		return fmt.Sprintf("%s parameter %q: %s", p.In, p.Field, p.Message)
	case p.Field != "":
		return fmt.Sprintf("%s %s: %s", p.In, p.Field, p.Message)
	default:
		return p.In + ": " + p.Message
	}
}

// Error is returned by ValidateRequest and ValidateResponse when the request
// or response does not conform to the spec.
type Error struct {
	// Operation is the operationId, or "" when no operation matched.
	Operation string
	// Method and Path identify the operation; Path is the spec's path
	// template (e.g. "/users/{user_id}") or, when no operation matched, the
	// request path.
	Method string
	Path   string
	// Subject is "request" or "response <status>".
	Subject  string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("openapicheck: ")
	b.WriteString(e.Subject)
	if e.Operation != "" {
		fmt.Fprintf(&b, " of operation %s (%s %s)", e.Operation, e.Method, e.Path)
	} else {
		fmt.Fprintf(&b, " %s %s", e.Method, e.Path)
	}
	b.WriteString(" does not conform to the Clerk Backend API spec")
	if len(e.Problems) == 1 {
		b.WriteString(": ")
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// route is an operation matched for a request.
type route struct {
	r          *routers.Route
	pathParams map[string]string
	// url is the request URL rewritten to the bare operation path.
	url *url.URL
}

func (rt *route) newError(subject string) *Error {
	return &Error{
		Operation: rt.r.Operation.OperationID,
		Method:    rt.r.Method,
		Path:      rt.r.Path,
		Subject:   subject,
	}
}

// findRoute matches req against the spec's operations by the path after the
// base path.
func (c *Checker) findRoute(req *http.Request, subject string) (*route, error) {
	if req == nil || req.URL == nil {
		return nil, &Error{Subject: subject, Problems: []Problem{{In: "route", Message: "no request or request URL given"}}}
	}
	fail := func(path, msg string) error {
		return &Error{Method: req.Method, Path: path, Subject: subject, Problems: []Problem{{In: "route", Message: msg}}}
	}
	escaped := req.URL.EscapedPath()
	rest := escaped
	if c.basePath != "" {
		switch i := strings.Index(escaped, c.basePath+"/"); {
		case i >= 0:
			rest = escaped[i+len(c.basePath):]
		case strings.HasSuffix(escaped, c.basePath):
			rest = ""
		default:
			return nil, fail(escaped, fmt.Sprintf("path does not contain the API base path %q of the spec's server URL", c.basePath))
		}
	}
	if rest == "" || rest == "/" {
		return nil, fail(escaped, "no operation is documented at the API base path itself")
	}
	if strings.HasSuffix(rest, "/") {
		return nil, fail(rest, "path has a trailing slash; no documented operation path ends in /")
	}
	unescaped, err := url.PathUnescape(rest)
	if err != nil {
		return nil, fail(rest, "path is not validly escaped: "+err.Error())
	}
	u := *req.URL
	u.Path, u.RawPath = unescaped, ""
	if u.EscapedPath() != rest {
		u.RawPath = rest
	}
	routingReq := &http.Request{Method: req.Method, URL: &u, Header: http.Header{}}
	r, params, err := c.router.FindRoute(routingReq)
	if err != nil {
		// The legacy router reports a templated path with an undocumented
		// method as not found, so look for the path under other methods.
		if ms := c.methodsFor(&u); ms != "" {
			return nil, fail(rest, fmt.Sprintf("method %s is not documented for this path (documented: %s)", req.Method, ms))
		}
		return nil, fail(rest, "no operation is documented for this path")
	}
	if r.Operation == nil {
		return nil, fail(rest, fmt.Sprintf("method %s is not documented for this path", req.Method))
	}
	return &route{r: r, pathParams: params, url: &u}, nil
}

// methodsFor lists the methods documented for the operation path u matches,
// or returns "" when it matches none (used only for error messages).
func (c *Checker) methodsFor(u *url.URL) string {
	var ms []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace} {
		if r, _, err := c.router.FindRoute(&http.Request{Method: m, URL: u, Header: http.Header{}}); err == nil && r.Operation != nil {
			ms = append(ms, m)
		}
	}
	return strings.Join(ms, ", ")
}

// authenticate satisfies the spec's security requirements for any bearer
// token: a real key is never needed, but an "Authorization: Bearer <token>"
// header must be present for bearer schemes. Error messages never include
// the header value.
func authenticate(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		// Only bearer auth is declared by the Clerk Backend API; accept
		// anything else rather than require real credentials.
		return nil
	}
	values := in.RequestValidationInput.Request.Header.Values("Authorization")
	switch {
	case len(values) == 0:
		return errors.New("header is missing; the operation requires bearer authentication (the Bearer scheme with a secret key)")
	case len(values) > 1:
		return errors.New("header is repeated")
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return errors.New("header does not use the Bearer scheme")
	}
	if strings.TrimSpace(token) == "" {
		return errors.New("bearer token is empty")
	}
	return nil
}

// secretsOf returns the strings that must never appear in error messages.
func secretsOf(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Authorization") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
		if _, tok, ok := strings.Cut(v, " "); ok {
			if tok = strings.TrimSpace(tok); len(tok) >= 4 {
				out = append(out, tok)
			}
		}
	}
	return out
}

func redact(e *Error, secrets []string) {
	for i := range e.Problems {
		for _, s := range secrets {
			e.Problems[i].Message = strings.ReplaceAll(e.Problems[i].Message, s, "[REDACTED]")
			e.Problems[i].Field = strings.ReplaceAll(e.Problems[i].Field, s, "[REDACTED]")
		}
	}
}

// ValidateRequest checks req (whose body is given separately as body; req.Body
// is neither read nor modified) against the operation it addresses: method
// and path, path and query parameters, the bearer security requirement,
// Content-Type and the JSON body.
func (c *Checker) ValidateRequest(req *http.Request, body []byte) error {
	rt, err := c.findRoute(req, "request")
	if err != nil {
		return err
	}
	r2 := req.Clone(req.Context())
	r2.URL = rt.url
	setBody(r2, body)

	input := &openapi3filter.RequestValidationInput{
		Request:    r2,
		PathParams: rt.pathParams,
		Route:      rt.r,
		Options: &openapi3filter.Options{
			MultiError:                        true,
			AuthenticationFunc:                authenticate,
			RejectWhenRequestBodyNotSpecified: true,
			SkipSettingDefaults:               true,
			SchemaValidationOptions:           c.schemaOpts,
		},
	}
	e := rt.newError("request")
	if err := openapi3filter.ValidateRequest(req.Context(), input); err != nil {
		e.Problems = append(e.Problems, c.requestProblems(err, requestContentTypes(rt.r.Operation))...)
	}
	e.Problems = append(e.Problems, undeclaredQueryParams(rt.r, rt.url.Query())...)
	if len(e.Problems) == 0 {
		return nil
	}
	redact(e, secretsOf(req.Header))
	return e
}

func setBody(r *http.Request, body []byte) {
	if len(body) == 0 {
		r.Body, r.GetBody, r.ContentLength = http.NoBody, nil, 0
		return
	}
	r.ContentLength = int64(len(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.Body, _ = r.GetBody()
}

// undeclaredQueryParams reports query parameters the operation does not declare.
func undeclaredQueryParams(r *routers.Route, q url.Values) []Problem {
	declared := map[string]*openapi3.Parameter{}
	for _, params := range []openapi3.Parameters{r.PathItem.Parameters, r.Operation.Parameters} {
		for _, p := range params {
			if p.Value != nil && p.Value.In == openapi3.ParameterInQuery {
				declared[p.Value.Name] = p.Value
			}
		}
	}
	var out []Problem
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if _, ok := declared[k]; ok {
			continue
		}
		if base, _, ok := strings.Cut(k, "["); ok {
			if p := declared[base]; p != nil && p.Style == openapi3.SerializationDeepObject {
				continue
			}
		}
		names := make([]string, 0, len(declared))
		for n := range declared {
			names = append(names, n)
		}
		slices.Sort(names)
		allowed := "none"
		if len(names) > 0 {
			allowed = strings.Join(names, ", ")
		}
		out = append(out, Problem{In: "query", Field: k, Message: "parameter is not declared by the operation (declared: " + allowed + ")"})
	}
	return out
}

// ValidateResponse checks that status is documented for the operation req
// addresses (explicitly, by range or by "default") and that header and body
// match the response documented for that status and content type.
func (c *Checker) ValidateResponse(req *http.Request, status int, header http.Header, body []byte) error {
	subject := "response " + strconv.Itoa(status)
	rt, err := c.findRoute(req, subject)
	if err != nil {
		return err
	}
	e := rt.newError(subject)
	responses := rt.r.Operation.Responses
	if responses == nil || (responses.Status(status) == nil && responses.Default() == nil) {
		var documented []string
		if responses != nil {
			documented = responses.Keys()
			slices.Sort(documented)
		}
		e.Problems = append(e.Problems, Problem{In: "status", Field: strconv.Itoa(status),
			Message: "status is not documented for the operation (documented: " + strings.Join(documented, ", ") + ")"})
		return e
	}
	if header == nil {
		header = http.Header{}
	}
	r2 := req.Clone(req.Context())
	r2.URL = rt.url
	setBody(r2, nil)
	opts := &openapi3filter.Options{
		MultiError:              true,
		IncludeResponseStatus:   true,
		SchemaValidationOptions: c.schemaOpts,
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    r2,
			PathParams: rt.pathParams,
			Route:      rt.r,
			Options:    opts,
		},
		Status:  status,
		Header:  header,
		Options: opts,
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(req.Context(), input); err != nil {
		e.Problems = append(e.Problems, c.responseProblems(err, responseContentTypes(rt.r.Operation, status))...)
	}
	if len(e.Problems) == 0 {
		return nil
	}
	redact(e, secretsOf(req.Header))
	return e
}
