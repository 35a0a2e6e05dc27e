package image_test

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

const (
	// buildStage is the stage the final stage copies the binary from, and
	// builtBinary the path it copies.
	buildStage  = "build"
	builtBinary = "/out/mcpgate"
	versionPkg  = "github.com/mcpgate/mcpgate/internal/version"
)

// buildArgs are the --build-arg values the build stage is replayed with:
// the host platform, so that the binary can be run here, and stamp values
// that cannot be mistaken for the defaults.
var buildArgs = map[string]string{
	"TARGETOS":   runtime.GOOS,
	"TARGETARCH": runtime.GOARCH,
	"VERSION":    "v9.8.7-test",
	"COMMIT":     "0123456789abcdef0123456789abcdef01234567",
	"DATE":       "2026-01-02T03:04:05Z",
}

// TestDockerfileBuildStage runs the Dockerfile's `go build` the way the build
// stage does, on a copy of the build context that .dockerignore lets through,
// and checks the binary the final stage ships.
func TestDockerfileBuildStage(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)

	// Step 1: the build context. A file the build needs but .dockerignore
	// keeps out makes the build below fail, as it would in Docker.
	contextDir := t.TempDir()
	copyContext(t, root, contextDir, readAllowlist(t, root))

	// Step 2: the build command, as the shell in the build stage gets it.
	global, stages := parseDockerfile(t, readFile(t, filepath.Join(root, "Dockerfile")))
	st, runIdx := findGoBuildRun(t, stages)
	if st.name != buildStage {
		t.Fatalf("Dockerfile line %d: the go build RUN is in stage %q, want stage %q (the one the final stage copies %s from)",
			st.body[runIdx].line, st.name, buildStage, builtBinary)
	}
	command, err := runCommand(st.body[runIdx].args)
	if err != nil {
		t.Fatalf("Dockerfile line %d: %v", st.body[runIdx].line, err)
	}
	for _, want := range []struct{ text, why string }{
		{"CGO_ENABLED=0", "distroless/static has no libc, the binary must be static"},
		{"-trimpath", "the binary must not embed build machine paths"},
		{"-X " + versionPkg + ".Version=", "`mcpgate version` must report the image version"},
		{"-X " + versionPkg + ".Commit=", "`mcpgate version` must report the commit"},
		{"-X " + versionPkg + ".Date=", "`mcpgate version` must report the build date"},
	} {
		if !strings.Contains(command, want.text) {
			t.Errorf("the go build RUN lacks %q (%s):\n%s", want.text, want.why, command)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	declared, err := argsInScope(st.body[:runIdx], globalArgs(t, global))
	if err != nil {
		t.Fatalf("build stage: %v", err)
	}
	command, err = expandBuildArgs(command, declared)
	if err != nil {
		t.Fatalf("the go build RUN: %v", err)
	}
	binary := filepath.Join(t.TempDir(), "mcpgate")
	command, err = redirectOutput(command, binary)
	if err != nil {
		t.Fatalf("the go build RUN: %v", err)
	}

	// Step 3: the build. GOTOOLCHAIN=local and the module cache keep it
	// offline; there is no go.work in the image, so none may apply here.
	build := exec.CommandContext(t.Context(), "sh", "-c", command)
	build.Dir = contextDir
	build.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOTOOLCHAIN=local", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the Dockerfile's go build failed in the build context copy %s: %v\ncommand: sh -c %s\n%s\n"+
			"(a package outside the .dockerignore allowlist, or modules missing from the cache: run `go mod download`)",
			contextDir, err, command, out)
	}

	// Step 4: static, because the final stage has no dynamic loader or libc.
	if runtime.GOOS == "linux" {
		problems, err := dynamicLinking(binary)
		if err != nil {
			t.Fatalf("reading the binary as ELF: %v", err)
		}
		for _, p := range problems {
			t.Errorf("the binary is not static: %s", p)
		}
	}

	// Step 5: the stamped version, exactly as internal/version prints it.
	out, err := exec.CommandContext(t.Context(), binary, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", binary, err, out)
	}
	wantVersion := regexp.MustCompile(`^mcpgate ` + regexp.QuoteMeta(buildArgs["VERSION"]) +
		` \(commit ` + regexp.QuoteMeta(buildArgs["COMMIT"]) +
		`, built ` + regexp.QuoteMeta(buildArgs["DATE"]) +
		`, ([^()\n]*go1[^()\n]*)\)\n$`)
	if !wantVersion.Match(out) {
		t.Errorf("mcpgate version printed %q, want it to match %s", out, wantVersion)
	}

	// Step 6: -trimpath took effect.
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []struct{ what, path string }{
		{"build context directory", contextDir},
		{"module cache", goEnv(t, "GOMODCACHE")},
	} {
		if bytes.Contains(data, []byte(leak.path)) {
			t.Errorf("the binary contains the %s path %s: -trimpath did not take effect", leak.what, leak.path)
		}
	}
}

// TestDockerfileFinalStage checks, by parsing, what the image runs and as whom.
func TestDockerfileFinalStage(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	global, stages := parseDockerfile(t, readFile(t, filepath.Join(root, "Dockerfile")))
	if len(stages) < 2 {
		t.Fatalf("the Dockerfile has %d stage(s), want a build stage and a final stage", len(stages))
	}

	t.Run("base image is distroless static nonroot", func(t *testing.T) {
		final := stages[len(stages)-1]
		distroless := regexp.MustCompile(`^gcr\.io/distroless/static(-debian\d+)?:nonroot(@sha256:[0-9a-f]{64})?$`)
		if !distroless.MatchString(final.image) {
			t.Errorf("Dockerfile line %d: the final stage is FROM %q, want %s", final.from.line, final.image, distroless)
		}
	})

	t.Run("runs as UID 65532", func(t *testing.T) {
		final := stages[len(stages)-1]
		// The last USER wins, so a later `USER root` would undo an earlier one.
		user := lastInstruction(final, "USER")
		if user == nil {
			t.Fatalf("the final stage has no USER, want USER 65532:65532")
		}
		if !regexp.MustCompile(`^65532(:65532)?$`).MatchString(user.args) {
			t.Errorf("Dockerfile line %d: USER %s, want USER 65532:65532", user.line, user.args)
		}
	})

	t.Run("entrypoint is the binary the build stage wrote", func(t *testing.T) {
		final := stages[len(stages)-1]
		if !slices.ContainsFunc(stages[:len(stages)-1], func(s stage) bool { return s.name == buildStage }) {
			t.Fatalf("no stage is named %q (FROM ... AS %s)", buildStage, buildStage)
		}
		dst := copiedBinary(t, final)
		entry := lastInstruction(final, "ENTRYPOINT")
		if entry == nil {
			t.Fatalf("the final stage has no ENTRYPOINT")
		}
		var argv []string
		if err := json.Unmarshal([]byte(entry.args), &argv); err != nil || len(argv) == 0 {
			t.Fatalf("Dockerfile line %d: ENTRYPOINT %s is not the exec form [\"%s\", ...]: without a shell in the image only the exec form runs",
				entry.line, entry.args, dst)
		}
		if argv[0] != dst {
			t.Errorf("Dockerfile line %d: ENTRYPOINT runs %q, want %q (where COPY --from=%s put %s)",
				entry.line, argv[0], dst, buildStage, builtBinary)
		}
	})

	t.Run("Go image matches go.mod", func(t *testing.T) {
		want, err := majorMinor(goDirective(t, readFile(t, filepath.Join(root, "go.mod"))))
		if err != nil {
			t.Fatalf("go.mod: %v", err)
		}
		globals := globalArgs(t, global)
		goVersion, ok := globals["GO_VERSION"]
		if !ok {
			t.Fatalf("the Dockerfile declares no ARG GO_VERSION before the first FROM")
		}
		if got, err := majorMinor(goVersion); err != nil || got != want {
			t.Errorf("ARG GO_VERSION=%s, want major.minor %s, the go directive of go.mod", goVersion, want)
		}
		first := stages[0]
		if !regexp.MustCompile(`\$\{?GO_VERSION\}?`).MatchString(first.image) {
			t.Errorf("Dockerfile line %d: the first stage is FROM %s, which does not use ARG GO_VERSION", first.from.line, first.image)
		}
		image, err := expandArgs(first.image, globals)
		if err != nil {
			t.Fatalf("Dockerfile line %d: %v", first.from.line, err)
		}
		repo, tag, _ := strings.Cut(image, ":")
		if repo != "golang" && repo != "docker.io/library/golang" {
			t.Errorf("Dockerfile line %d: the first stage is FROM %s, want a golang: image", first.from.line, image)
		}
		if got, err := majorMinor(tag); err != nil || got != want {
			t.Errorf("Dockerfile line %d: the first stage is FROM %s, want Go %s, the go directive of go.mod", first.from.line, image, want)
		}
	})
}

// TestDockerignoreExcludesSecretsAndBuildOutputs checks that the build context
// holds no repository history, local build outputs or non-image sources.
func TestDockerignoreExcludesSecretsAndBuildOutputs(t *testing.T) {
	t.Parallel()
	allow := readAllowlist(t, repoRoot(t))
	for _, tc := range []struct {
		path string
		want bool
	}{
		// What the build needs: these make a wrong parse visible.
		{"go.mod", true},
		{"go.sum", true},
		{"cmd/mcpgate", true},
		{"internal/version", true},
		// What must stay out.
		{".git", false},
		{"bin", false},
		{"dist", false},
		{"charts", false},
		{"test", false},
		{"hack", false},
	} {
		if got := contextIncludes(allow, tc.path); got != tc.want {
			t.Errorf("build context includes %s = %v, want %v (allowlist %q)", tc.path, got, tc.want, allow)
		}
	}
}

// repoRoot is the checkout this test runs in.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.ModuleRoot("")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func goEnv(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "go", "env", name).Output()
	value := strings.TrimSpace(string(out))
	if err != nil || value == "" {
		t.Fatalf("go env %s: %q, %v", name, value, err)
	}
	return value
}

// readAllowlist returns the paths .dockerignore lets into the build context.
func readAllowlist(t *testing.T, root string) []string {
	t.Helper()
	allow, err := parseAllowlist(readFile(t, filepath.Join(root, ".dockerignore")))
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	return allow
}

// parseAllowlist accepts only the allowlist form (`*`, then `!path` lines),
// for which "is this path in the context" has a simple exact answer; a test
// that half-understood Docker's pattern language could pass on a context
// Docker would build differently.
func parseAllowlist(text string) ([]string, error) {
	const form = "this test supports only the allowlist form of .dockerignore: `*`, then `!path` lines, comments and blank lines"
	var allow []string
	excludeAll := false
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "*":
			if len(allow) > 0 {
				return nil, fmt.Errorf("line %d: `*` after `!` lines excludes them again; %s", i+1, form)
			}
			excludeAll = true
		case strings.HasPrefix(line, "!"):
			if !excludeAll {
				return nil, fmt.Errorf("line %d: %q before `*`; %s", i+1, line, form)
			}
			p := path.Clean(strings.TrimPrefix(line[1:], "/"))
			if p == "." || p == ".." || strings.HasPrefix(p, "../") || strings.ContainsAny(p, `*?[]\`) {
				return nil, fmt.Errorf("line %d: %q is not a plain path; %s", i+1, line, form)
			}
			allow = append(allow, p)
		default:
			return nil, fmt.Errorf("line %d: %q; %s", i+1, line, form)
		}
	}
	if !excludeAll {
		return nil, errors.New("no `*` line; " + form)
	}
	return allow, nil
}

// contextIncludes reports whether any part of the slash-separated path p is in
// the build context.
func contextIncludes(allow []string, p string) bool {
	return slices.ContainsFunc(allow, func(a string) bool {
		return a == p || strings.HasPrefix(a, p+"/") || strings.HasPrefix(p, a+"/")
	})
}

// copyContext copies the allowed paths of root into dir, all of each.
func copyContext(t *testing.T, root, dir string, allow []string) {
	t.Helper()
	allow = slices.Sorted(slices.Values(allow))
	for i, p := range allow {
		if slices.ContainsFunc(allow[:i], func(a string) bool { return p == a || strings.HasPrefix(p, a+"/") }) {
			continue // already copied with its parent
		}
		src, dst := filepath.Join(root, filepath.FromSlash(p)), filepath.Join(dir, filepath.FromSlash(p))
		info, err := os.Stat(src)
		if errors.Is(err, fs.ErrNotExist) {
			t.Logf(".dockerignore allows %s, which does not exist", p)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if info.IsDir() {
			err = os.CopyFS(dst, os.DirFS(src))
		} else {
			err = copyFile(src, dst, info.Mode().Perm())
		}
		if err != nil {
			t.Fatalf("copying %s into the build context: %v", p, err)
		}
	}
}

func copyFile(src, dst string, perm fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, perm)
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int // where it starts, 1-based
	cmd  string
	args string
}

// stage is a FROM and the instructions up to the next FROM.
type stage struct {
	from  instruction
	image string // with any ${ARG} unexpanded
	name  string // lower case, as Docker compares stage names
	body  []instruction
}

// parseDockerfile returns the instructions before the first FROM and the
// stages.
func parseDockerfile(t *testing.T, text string) (global []instruction, stages []stage) {
	t.Helper()
	for _, in := range instructions(text) {
		if in.cmd != "FROM" {
			if len(stages) == 0 {
				global = append(global, in)
			} else {
				stages[len(stages)-1].body = append(stages[len(stages)-1].body, in)
			}
			continue
		}
		fields := withoutFlags(strings.Fields(in.args))
		s := stage{from: in}
		switch {
		case len(fields) == 1:
		case len(fields) == 3 && strings.EqualFold(fields[1], "AS"):
			s.name = strings.ToLower(fields[2])
		default:
			t.Fatalf("Dockerfile line %d: cannot parse FROM %s", in.line, in.args)
		}
		s.image = fields[0]
		stages = append(stages, s)
	}
	if len(stages) == 0 {
		t.Fatal("the Dockerfile has no FROM")
	}
	return global, stages
}

// instructions splits a Dockerfile into instructions as Docker's parser does
// with the default escape character: comment lines go, also inside a
// continuation, and a trailing backslash joins the next line.
func instructions(text string) []instruction {
	var out []instruction
	var cur *instruction
	var buf strings.Builder
	for i, raw := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(raw)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" {
			continue
		}
		if cur == nil {
			cur = &instruction{line: i + 1}
			buf.Reset()
		}
		line := strings.TrimRightFunc(raw, unicode.IsSpace)
		if body, ok := strings.CutSuffix(line, `\`); ok {
			buf.WriteString(body)
			continue
		}
		buf.WriteString(line)
		text := strings.TrimSpace(buf.String())
		cmd, args := text, ""
		if end := strings.IndexFunc(text, unicode.IsSpace); end >= 0 {
			cmd, args = text[:end], strings.TrimSpace(text[end:])
		}
		cur.cmd, cur.args = strings.ToUpper(cmd), args
		out = append(out, *cur)
		cur = nil
	}
	return out
}

// withoutFlags drops the leading --flag=value words of an instruction.
func withoutFlags(fields []string) []string {
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		fields = fields[1:]
	}
	return fields
}

func lastInstruction(s stage, cmd string) *instruction {
	for i := len(s.body) - 1; i >= 0; i-- {
		if s.body[i].cmd == cmd {
			return &s.body[i]
		}
	}
	return nil
}

// findGoBuildRun returns the one RUN that runs go build, and its stage.
func findGoBuildRun(t *testing.T, stages []stage) (stage, int) {
	t.Helper()
	var lines []int
	var st stage
	var idx int
	for _, s := range stages {
		for i, in := range s.body {
			if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
				lines = append(lines, in.line)
				st, idx = s, i
			}
		}
	}
	if len(lines) != 1 {
		t.Fatalf("the Dockerfile has %d RUN instructions with `go build` (lines %v), want exactly 1", len(lines), lines)
	}
	return st, idx
}

// runCommand strips the --mount options of a RUN; any other option changes
// how the command runs in a way this test does not replay.
func runCommand(args string) (string, error) {
	rest := strings.TrimSpace(args)
	for strings.HasPrefix(rest, "--") {
		end := strings.IndexFunc(rest, unicode.IsSpace)
		if end < 0 {
			return "", fmt.Errorf("RUN %s has no command", args)
		}
		if flag := rest[:end]; !strings.HasPrefix(flag, "--mount=") {
			return "", fmt.Errorf("RUN option %s: this test replays only --mount options (caches)", flag)
		}
		rest = strings.TrimSpace(rest[end:])
	}
	if strings.HasPrefix(rest, "[") || strings.HasPrefix(rest, "<<") {
		return "", fmt.Errorf("RUN %s: this test replays only the shell form, not the exec form or a heredoc", rest)
	}
	return rest, nil
}

// globalArgs returns the ARGs declared before the first FROM, with their
// defaults.
func globalArgs(t *testing.T, global []instruction) map[string]string {
	t.Helper()
	args, err := argsInScope(global, nil)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return args
}

var argName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// argsInScope returns the ARGs the instructions declare, with their defaults;
// an ARG without a default takes that of the global ARG of the same name.
func argsInScope(ins []instruction, global map[string]string) (map[string]string, error) {
	args := map[string]string{}
	for _, in := range ins {
		if in.cmd != "ARG" {
			continue
		}
		for _, word := range strings.Fields(in.args) {
			name, value, hasDefault := strings.Cut(word, "=")
			if !argName.MatchString(name) {
				return nil, fmt.Errorf("line %d: cannot parse ARG %s (a default with spaces?)", in.line, in.args)
			}
			if !hasDefault {
				value = global[name]
			} else if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
				value = value[1 : len(value)-1]
			}
			args[name] = value
		}
	}
	return args, nil
}

// expandBuildArgs substitutes buildArgs, and the defaults of the other
// declared ARGs, into the command. A variable that no ARG in scope declares
// would be empty in Docker: an error, not a silent empty stamp.
func expandBuildArgs(command string, declared map[string]string) (string, error) {
	withValues := map[string]string{}
	for name, value := range declared {
		withValues[name] = value
		if v, ok := buildArgs[name]; ok {
			withValues[name] = v
		}
	}
	return expandArgs(command, withValues)
}

func expandArgs(s string, args map[string]string) (string, error) {
	var undeclared []string
	out := os.Expand(s, func(name string) string {
		v, ok := args[name]
		if !ok {
			undeclared = append(undeclared, name)
		}
		return v
	})
	if len(undeclared) > 0 {
		return "", fmt.Errorf("uses %v, which no ARG in scope declares (Docker would substitute an empty string)", undeclared)
	}
	return out, nil
}

var outputFlag = regexp.MustCompile(`(?:^|\s)-o(?:\s+|=)(` + regexp.QuoteMeta(builtBinary) + `)(?:\s|$)`)

// redirectOutput points the command's -o builtBinary at path.
func redirectOutput(command, path string) (string, error) {
	matches := outputFlag.FindAllStringSubmatchIndex(command, -1)
	if len(matches) != 1 {
		return "", fmt.Errorf("writes -o %s %d times, want once: the final stage copies the binary from there:\n%s",
			builtBinary, len(matches), command)
	}
	start, end := matches[0][2], matches[0][3]
	return command[:start] + "'" + path + "'" + command[end:], nil
}

// dynamicLinking lists why the ELF file at path would need a dynamic loader
// or shared libraries at run time.
func dynamicLinking(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var problems []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			problems = append(problems, "it has a PT_INTERP program header (a dynamic loader)")
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return nil, err
	}
	if len(libs) > 0 {
		problems = append(problems, fmt.Sprintf("it needs the shared libraries %v (DT_NEEDED)", libs))
	}
	return problems, nil
}

// copiedBinary returns where the final stage's COPY --from=build puts
// builtBinary.
func copiedBinary(t *testing.T, final stage) string {
	t.Helper()
	var dsts []string
	for _, in := range final.body {
		if in.cmd != "COPY" {
			continue
		}
		fields := strings.Fields(in.args)
		if !slices.Contains(fields, "--from="+buildStage) {
			continue
		}
		words := withoutFlags(fields)
		if len(words) < 2 || !slices.Contains(words[:len(words)-1], builtBinary) {
			continue
		}
		dst := words[len(words)-1]
		if strings.HasSuffix(dst, "/") {
			dst = path.Join(dst, path.Base(builtBinary))
		}
		dsts = append(dsts, dst)
	}
	if len(dsts) != 1 {
		t.Fatalf("the final stage has %d `COPY --from=%s %s <dest>`, want exactly 1 (destinations %q)",
			len(dsts), buildStage, builtBinary, dsts)
	}
	return dsts[0]
}

// goDirective returns the version of go.mod's go directive.
func goDirective(t *testing.T, gomod string) string {
	t.Helper()
	for _, line := range strings.Split(gomod, "\n") {
		if fields := strings.Fields(line); len(fields) == 2 && fields[0] == "go" {
			return fields[1]
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

var majorMinorPrefix = regexp.MustCompile(`^(\d+\.\d+)(?:$|[.\-])`)

// majorMinor turns 1.26.0, 1.26 or 1.26-bookworm into 1.26.
func majorMinor(version string) (string, error) {
	m := majorMinorPrefix.FindStringSubmatch(version)
	if m == nil {
		return "", fmt.Errorf("%q does not start with a Go major.minor version", version)
	}
	return m[1], nil
}
