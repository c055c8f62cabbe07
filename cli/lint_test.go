package cli

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	"github.com/urfave/cli/v2"

	_ "github.com/claimx/claimx-connect/processors"
)

const lintConnection = `processor_resources:
  - label: claimx
    claimx_connection:
      base_url: http://127.0.0.1:1
      auth: { token: t }
`

const lintLookupResource = `processor_resources:
  - label: claimx_assignment
    claimx_lookup:
      connection: %s
      path: /customTasks/assignment/{id}
      path_params: { id: this.id }
`

const lintPipeline = `input:
  generate: { mapping: 'root = {"id": 1}', count: 1 }
pipeline:
  processors:
    - resource: claimx_assignment
    - switch:
        - check: 'true'
          processors:
            - claimx_lookup:
                connection: %s
                path: /export/project/1
output:
  drop: {}
`

// writeLintFiles writes name → content under a temporary directory and
// returns it; %s in a content is replaced by conn.
func writeLintFiles(t *testing.T, files map[string]string, conn string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "%s", conn)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runLint runs `claimx-connect lint args...` in dir and returns what it
// wrote to stderr (benthos's lint and ours) and its exit code.
func runLint(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chdir(wd) }()
	// benthos's lint writes to os.Stderr (and its usage to os.Stdout).
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	oldErr, oldOut := os.Stderr, os.Stdout
	os.Stderr, os.Stdout = f, f
	var ours bytes.Buffer
	app := &cli.App{
		Name:           "claimx-connect",
		Commands:       []*cli.Command{LintCommand()},
		ErrWriter:      &ours,
		ExitErrHandler: func(*cli.Context, error) {},
	}
	err = app.RunContext(context.Background(), append([]string{"claimx-connect", "lint"}, args...))
	os.Stderr, os.Stdout = oldErr, oldOut
	code := 0
	if err != nil {
		var ec cli.ExitCoder
		if !errors.As(err, &ec) {
			t.Fatalf("lint: %v", err)
		}
		code = ec.ExitCode()
	}
	theirs, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(theirs) + ours.String(), code
}

func TestLint(t *testing.T) {
	files := map[string]string{
		"resources/claimx.yaml":  lintConnection,
		"resources/lookups.yaml": lintLookupResource,
		"pipelines/stream.yaml":  lintPipeline,
	}
	cases := []struct {
		name     string
		conn     string
		files    map[string]string
		args     []string
		wantCode int
		want     []string // lines expected in the output
		notWant  []string
	}{
		{
			name: "every lookup names a connection of another file",
			conn: "claimx", files: files,
			args: []string{"-r", "resources/claimx.yaml", "-r", "resources/lookups.yaml", "pipelines/*.yaml"},
		},
		{
			name: "targets as dir/...",
			conn: "claimx", files: files,
			args: []string{"--resources=resources/claimx.yaml", "--resources=resources/lookups.yaml", "./pipelines/..."},
		},
		{
			name: "the connection's file left out",
			conn: "claimx", files: files,
			args:     []string{"-r", "resources/lookups.yaml", "pipelines/stream.yaml"},
			wantCode: 1,
			want: []string{
				`resources/lookups.yaml(4,19) claimx_lookup.connection "claimx" names no claimx_connection processor resource in the linted files`,
				`pipelines/stream.yaml(10,29) claimx_lookup.connection "claimx" names no claimx_connection processor resource in the linted files`,
			},
		},
		{
			name: "a misspelt connection",
			conn: "claimx_typo", files: files,
			args:     []string{"-r", "resources/claimx.yaml", "-r", "resources/lookups.yaml", "pipelines/stream.yaml"},
			wantCode: 1,
			want:     []string{`resources/lookups.yaml(4,19) claimx_lookup.connection "claimx_typo" names no claimx_connection`},
		},
		{
			name: "a connection from the environment's default",
			conn: "${CLAIMX_LINT_TEST_CONNECTION:claimx}", files: files,
			args: []string{"-r", "resources/claimx.yaml", "-r", "resources/lookups.yaml", "pipelines/stream.yaml"},
		},
		{
			name: "a processor resource that is not a connection",
			conn: "claimx_assignment", files: files,
			args:     []string{"-r", "resources/claimx.yaml", "-r", "resources/lookups.yaml", "pipelines/stream.yaml"},
			wantCode: 1,
			want:     []string{`names a claimx_lookup processor resource, not a claimx_connection`},
		},
		{
			name: "benthos's own lint still runs, its output first",
			conn: "claimx",
			files: map[string]string{
				"resources/claimx.yaml":  lintConnection,
				"resources/lookups.yaml": lintLookupResource + "      nope: 1\n",
				"pipelines/stream.yaml":  lintPipeline,
			},
			args:     []string{"-r", "resources/claimx.yaml", "-r", "resources/lookups.yaml", "pipelines/stream.yaml"},
			wantCode: 1,
			want:     []string{`resources/lookups.yaml(7,1) field nope not recognised`},
			notWant:  []string{"claimx_lookup.connection"},
		},
		{
			name: "claimx_media and itel_submission name connections too",
			conn: "itel_typo",
			files: map[string]string{
				"resources/claimx.yaml": lintConnection,
				"pipelines/forms.yaml": `input:
  generate: { mapping: 'root = {"project_id": "1"}', count: 1 }
pipeline:
  processors:
    - claimx_media:
        connection: claimx
        project_id: ${! this.project_id }
        media_ids: 'root = []'
        store_uri: ./photos
        key_prefix: p
    - itel_submission:
        connection: %s
        idempotency_key: k
output:
  drop: {}
`,
			},
			args:     []string{"-r", "resources/claimx.yaml", "pipelines/forms.yaml"},
			wantCode: 1,
			want:     []string{`pipelines/forms.yaml(12,21) itel_submission.connection "itel_typo" names no claimx_connection processor resource in the linted files`},
			notWant:  []string{"claimx_media.connection"},
		},
		{
			name: "an unknown flag is benthos's to refuse",
			conn: "claimx", files: files,
			args:     []string{"--no-such-flag", "pipelines/stream.yaml"},
			wantCode: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeLintFiles(t, tc.files, tc.conn)
			out, code := runLint(t, dir, tc.args...)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, tc.wantCode, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in the output:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("%q in the output:\n%s", w, out)
				}
			}
			if tc.wantCode == 0 && strings.TrimSpace(out) != "" {
				t.Errorf("output of a clean lint:\n%s", out)
			}
		})
	}
}

func TestLintArgs(t *testing.T) {
	cases := []struct {
		args               []string
		targets, resources []string
	}{
		{[]string{"a.yaml", "b.yaml"}, []string{"a.yaml", "b.yaml"}, nil},
		{[]string{"-r", "r.yaml", "--resources=s.yaml", "-resources", "t.yaml", "a.yaml"}, []string{"a.yaml"}, []string{"r.yaml", "s.yaml", "t.yaml"}},
		{[]string{"--deprecated", "-e", ".env", "--verbose", "--skip-env-var-check", "a.yaml"}, []string{"a.yaml"}, nil},
		{[]string{"a.yaml", "-r", "r.yaml"}, []string{"a.yaml", "-r", "r.yaml"}, nil},
		{[]string{"-r", "r.yaml", "--", "-odd.yaml"}, []string{"-odd.yaml"}, []string{"r.yaml"}},
	}
	for _, tc := range cases {
		targets, resources := lintArgs(tc.args)
		if strings.Join(targets, " ") != strings.Join(tc.targets, " ") || strings.Join(resources, " ") != strings.Join(tc.resources, " ") {
			t.Errorf("%q: targets %q resources %q, want %q %q", tc.args, targets, resources, tc.targets, tc.resources)
		}
	}
}

// TestLintShippedPipelines lints the repository's pipelines as `make lint`
// does: their lookups all name the connection of resources/claimx.yaml.
func TestLintShippedPipelines(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	resources, _ := filepath.Glob(filepath.Join(root, "pipelines", "resources", "*.yaml"))
	var lookupsFound bool
	for _, r := range resources {
		b, _ := os.ReadFile(r)
		lookupsFound = lookupsFound || strings.Contains(string(b), "claimx_lookup:")
	}
	if !lookupsFound {
		t.Fatal("no claimx_lookup in pipelines/resources: the check below proves nothing")
	}
	if lints := crossFileLints(expandLintPaths([]string{filepath.Join(root, "pipelines", "*.yaml")}, true), resources); len(lints) != 0 {
		t.Fatalf("lints: %v", lints)
	}
}

func TestExpandLintPaths(t *testing.T) {
	dir := writeLintFiles(t, map[string]string{"a/x.yaml": "", "a/b/y.yml": "", "a/b/c/z.yaml": "", "a/readme.md": ""}, "")
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = os.Chdir(wd) }()
	cases := []struct {
		paths []string
		super bool
		want  string
	}{
		{[]string{"./a/..."}, true, "a/b/c/z.yaml a/b/y.yml a/x.yaml"},
		{[]string{"a/**/*.yaml"}, true, "a/b/c/z.yaml a/x.yaml"},
		{[]string{"a/*.yaml", "a/x.yaml"}, true, "a/x.yaml"},
		{[]string{"missing.yaml", "missing*.yaml"}, true, "missing.yaml"},
		{[]string{"./a/..."}, false, "./a/..."},
	}
	for _, tc := range cases {
		got := expandLintPaths(tc.paths, tc.super)
		for i := range got {
			got[i] = filepath.ToSlash(got[i])
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q: %q, want %q", tc.paths, got, tc.want)
		}
	}
}
