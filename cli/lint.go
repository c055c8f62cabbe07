package cli

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"
)

// LintCommand is `claimx-connect lint`: benthos's own lint, unchanged (same
// arguments, flags, output and exit code), then the checks across files
// that benthos cannot make because it lints each file on its own: every
// claimx_lookup.connection must name a claimx_connection processor resource
// of the linted files (configs and -r resources). It replaces benthos's
// lint: custom commands come before the built-in ones of the same name.
func LintCommand() *cli.Command {
	return &cli.Command{
		Name:      "lint",
		Usage:     "Parse claimx-connect configs and report any linting errors, across files too",
		ArgsUsage: "[-r RESOURCES]... [--deprecated] [--labels] [--skip-env-var-check] [--verbose] PATH...",
		Description: `Runs benthos's lint on the same arguments (see ` + "`claimx-connect lint --help`" + `),
then reads every target file (configs and -r resources, with the glob and
./dir/... forms) and reports, in the same format, every claimx_lookup whose
connection names no claimx_connection processor resource in them. Exits 1 on
any lint error:

  claimx-connect lint -r ./pipelines/resources/*.yaml ./pipelines/*.yaml`,
		// benthos's lint parses the flags, so that both accept the same.
		SkipFlagParsing: true,
		Action: func(c *cli.Context) error {
			args := c.Args().Slice()
			code, err := service.RunCLIToCode(c.Context,
				service.CLIOptSetArgs(append([]string{c.App.Name, "lint"}, args...)...),
				service.CLIOptSetBinaryName(c.App.Name),
				service.CLIOptSetProductName(c.App.Name),
			)
			if err != nil {
				return cli.Exit(err.Error(), max(code, 1))
			}
			for _, a := range args {
				if a == "-h" || a == "--help" || a == "-help" {
					return nil
				}
			}
			targets, resources := lintArgs(args)
			lints := crossFileLints(expandLintPaths(targets, true), expandLintPaths(resources, false))
			printLints(c.App.ErrWriter, lints)
			if len(lints) > 0 {
				code = max(code, 1)
			}
			if code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}

// lintArgs splits benthos lint's arguments into the target paths and the
// -r/--resources paths. Flag parsing stops at the first positional argument
// or "--", as benthos's does.
func lintArgs(args []string) (targets, resources []string) {
	withValue := map[string]bool{"r": true, "resources": true, "e": true, "env-file": true, "t": true, "templates": true}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(targets, args[i+1:]...), resources
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return append(targets, args[i:]...), resources
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !withValue[name] {
			continue // a boolean flag
		}
		if !hasValue {
			if i+1 >= len(args) {
				break
			}
			i++
			value = args[i]
		}
		if name == "r" || name == "resources" {
			resources = append(resources, value)
		}
	}
	return targets, resources
}

// expandLintPaths turns paths into files as benthos does: "dir/..." walks
// dir for .yaml and .yml files (targets only), globs (with **) expand, and a
// path that matches nothing is kept as it is (benthos reports it).
func expandLintPaths(paths []string, superPaths bool) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	for _, p := range paths {
		if superPaths && strings.HasSuffix(p, "...") {
			root := strings.TrimSuffix(p, "/...")
			if p == "..." || p == "./..." {
				root = "."
			}
			_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() && (strings.HasSuffix(path, "yaml") || strings.HasSuffix(path, "yml")) {
					add(path)
				}
				return nil
			})
			continue
		}
		matches := globPath(p)
		for _, m := range matches {
			add(m)
		}
		if len(matches) == 0 && !strings.ContainsAny(p, `*?[\`) {
			add(p)
		}
	}
	return out
}

// globPath expands a glob, where ** also matches across directories.
func globPath(pattern string) []string {
	if !strings.Contains(pattern, "**") {
		m, _ := filepath.Glob(pattern)
		return m
	}
	root := filepath.Dir(strings.SplitN(pattern, "**", 2)[0] + "x")
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case strings.HasPrefix(pattern[i:], "**/"):
			re.WriteString("(?:.*/)?")
			i += 2
		case strings.HasPrefix(pattern[i:], "**"):
			re.WriteString(".*")
			i++
		case c == '*':
			re.WriteString("[^/]*")
		case c == '?':
			re.WriteString("[^/]")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	rx, err := regexp.Compile(re.String())
	if err != nil {
		return nil
	}
	var out []string
	_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && rx.MatchString(filepath.ToSlash(path)) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// lintLine is one finding, printed as benthos prints its own:
// file(line,col) what.
type lintLine struct {
	file      string
	line, col int
	what      string
}

func (l lintLine) String() string { return fmt.Sprintf("%s(%d,%d) %s", l.file, l.line, l.col, l.what) }

func printLints(w io.Writer, lints []lintLine) {
	if w == nil {
		w = os.Stderr
	}
	for _, l := range lints {
		fmt.Fprintln(w, l.String())
	}
}

// connectionUsers are the processors whose `connection` names a
// claimx_connection processor resource.
var connectionUsers = []string{"claimx_lookup", "claimx_media", "itel_submission"}

// crossFileLints reads every file and reports each claimx_lookup (or other
// connectionUsers component) whose
// connection is not the label of a claimx_connection processor resource of
// any of them. Files that cannot be read or parsed are left to benthos's
// lint, which reports them; markdown files too.
func crossFileLints(targets, resources []string) []lintLine {
	type lookup struct {
		file      string
		component string
		node      *yaml.Node
	}
	kinds := map[string]string{} // processor resource label → its component
	var lookups []lookup
	for _, f := range append(append([]string{}, targets...), resources...) {
		if strings.HasSuffix(f, ".md") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var doc yaml.Node
		if yaml.Unmarshal(raw, &doc) != nil || len(doc.Content) == 0 {
			continue
		}
		root := doc.Content[0]
		if procs := mapValue(root, "processor_resources"); procs != nil && procs.Kind == yaml.SequenceNode {
			for _, p := range procs.Content {
				label := mapValue(p, "label")
				if label == nil || label.Kind != yaml.ScalarNode {
					continue
				}
				kind := ""
				for i := 0; i+1 < len(p.Content); i += 2 {
					if k := p.Content[i].Value; k != "label" {
						kind = k
					}
				}
				kinds[expandEnv(label.Value)] = kind
			}
		}
		walkYAML(root, func(n *yaml.Node) {
			for _, component := range connectionUsers {
				if l := mapValue(n, component); l != nil {
					if conn := mapValue(l, "connection"); conn != nil && conn.Kind == yaml.ScalarNode {
						lookups = append(lookups, lookup{f, component, conn})
					}
				}
			}
		})
	}
	var lints []lintLine
	for _, l := range lookups {
		name := expandEnv(l.node.Value)
		kind, ok := kinds[name]
		switch {
		case ok && kind == "claimx_connection":
			continue
		case ok:
			lints = append(lints, lintLine{l.file, l.node.Line, l.node.Column,
				fmt.Sprintf("%s.connection %q names a %s processor resource, not a claimx_connection", l.component, name, kind)})
		default:
			lints = append(lints, lintLine{l.file, l.node.Line, l.node.Column,
				fmt.Sprintf("%s.connection %q names no claimx_connection processor resource in the linted files", l.component, name)})
		}
	}
	sort.SliceStable(lints, func(i, j int) bool {
		if lints[i].file != lints[j].file {
			return lints[i].file < lints[j].file
		}
		return lints[i].line < lints[j].line
	})
	return lints
}

// mapValue is the value of key in a mapping node, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func walkYAML(n *yaml.Node, fn func(*yaml.Node)) {
	fn(n)
	for _, c := range n.Content {
		walkYAML(c, fn)
	}
}

var lintEnvRe = regexp.MustCompile(`\$\{([0-9A-Za-z_.]+)(?::([^}|]*))?(?:\|[0-9A-Za-z]+)?\}`)

// expandEnv resolves ${VAR} and ${VAR:default} as benthos does when it reads
// a config.
func expandEnv(s string) string {
	return lintEnvRe.ReplaceAllStringFunc(s, func(m string) string {
		sub := lintEnvRe.FindStringSubmatch(m)
		if v := os.Getenv(sub[1]); v != "" {
			return v
		}
		return sub[2]
	})
}
