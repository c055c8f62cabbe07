package delta

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Table constraints: column invariants (delta.invariants), CHECK
// constraints (delta.constraints.<name>), generated columns
// (delta.generationExpression) and identity columns (delta.identity.*),
// compiled once per metaData from the schemaString and configuration.
//
// Identity values are allocated in Append above delta.identity.highWaterMark
// and the commit carries a new metaData with the new high-water mark. A
// concurrent commit that changed metaData (another writer allocating
// identity values) makes the append fail with ErrConflict: the caller
// retries the batch, which allocates again from the winner's mark.

// ConstraintError is a record that violates a table constraint. It is a
// problem of that record only.
type ConstraintError struct {
	// Kind is "CHECK constraint", "invariant", "generated column" or
	// "identity column".
	Kind string
	// Name is the constraint name, or the column.
	Name string
	// Expression is the SQL text.
	Expression string
	// Values names the columns the expression reads and the record's values.
	Values string
	// Reason is set when the expression could not be evaluated or a value
	// differs from the generated one.
	Reason string
}

// Error reads e.g. `row violates CHECK constraint positive_amount
// (amount > 0): amount = -3`.
func (e *ConstraintError) Error() string {
	var s string
	switch e.Kind {
	case "invariant":
		s = fmt.Sprintf("row violates the invariant of column %s (%s)", e.Name, e.Expression)
	case "generated column":
		s = fmt.Sprintf("column %s is generated as (%s)", e.Name, e.Expression)
	case "identity column":
		s = fmt.Sprintf("column %s is an identity column", e.Name)
	default:
		s = fmt.Sprintf("row violates %s %s (%s)", e.Kind, e.Name, e.Expression)
	}
	if e.Values != "" {
		s += ": " + e.Values
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// schemaNode is one field of a Spark JSON schema, nested types included, so
// that constraints work on any schema the log holds.
type schemaNode struct {
	name     string
	prim     DataType // Kind 0 for nested types
	fields   []*schemaNode
	metadata map[string]any
}

type schemaTree struct{ top []*schemaNode }

func parseSchemaTree(schemaString string) (*schemaTree, error) {
	var st struct {
		Fields []json.RawMessage `json:"fields"`
	}
	dec := json.NewDecoder(strings.NewReader(schemaString))
	dec.UseNumber()
	if err := dec.Decode(&st); err != nil {
		return nil, fmt.Errorf("parsing schemaString: %w", err)
	}
	top, err := parseNodes(st.Fields)
	if err != nil {
		return nil, err
	}
	return &schemaTree{top: top}, nil
}

func parseNodes(raw []json.RawMessage) ([]*schemaNode, error) {
	out := make([]*schemaNode, 0, len(raw))
	for _, r := range raw {
		var f struct {
			Name     string          `json:"name"`
			Type     json.RawMessage `json:"type"`
			Metadata map[string]any  `json:"metadata"`
		}
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.UseNumber()
		if err := dec.Decode(&f); err != nil {
			return nil, fmt.Errorf("parsing schemaString: %w", err)
		}
		n := &schemaNode{name: f.Name, metadata: f.Metadata}
		var name string
		if json.Unmarshal(f.Type, &name) == nil {
			if t, err := ParseType(name); err == nil {
				n.prim = t
			}
		} else {
			var nested struct {
				Type   string            `json:"type"`
				Fields []json.RawMessage `json:"fields"`
			}
			if err := json.Unmarshal(f.Type, &nested); err != nil {
				return nil, fmt.Errorf("parsing schemaString: column %q: %w", f.Name, err)
			}
			if nested.Type == "struct" {
				sub, err := parseNodes(nested.Fields)
				if err != nil {
					return nil, err
				}
				n.fields = sub
			}
		}
		out = append(out, n)
	}
	return out, nil
}

func findNode(nodes []*schemaNode, name string) int {
	for i, n := range nodes {
		if n.name == name {
			return i
		}
	}
	for i, n := range nodes {
		if strings.EqualFold(n.name, name) {
			return i
		}
	}
	return -1
}

// resolver resolves column paths against the tree. A struct value in a
// Row is []any in field order.
func (t *schemaTree) resolver() columnResolver {
	return func(path []string) (exprColumn, error) {
		nodes := t.top
		var idx []int
		var node *schemaNode
		for i, p := range path {
			if nodes == nil {
				return exprColumn{}, fmt.Errorf("%s is not a struct", strings.Join(path[:i], "."))
			}
			j := findNode(nodes, p)
			if j < 0 {
				return exprColumn{}, fmt.Errorf("unknown column %s", strings.Join(path[:i+1], "."))
			}
			idx = append(idx, j)
			node = nodes[j]
			nodes = node.fields
		}
		if node.prim.Kind == KindInvalid {
			return exprColumn{}, fmt.Errorf("column %s has a nested type, which expressions here cannot use", strings.Join(path, "."))
		}
		get := func(r Row) any {
			var v any = []any(r)
			for _, i := range idx {
				s, ok := v.([]any)
				if !ok {
					if rr, ok2 := v.(Row); ok2 {
						s = rr
					} else {
						return nil
					}
				}
				if i >= len(s) {
					return nil
				}
				v = s[i]
			}
			return v
		}
		return exprColumn{get: get, t: node.prim, name: strings.Join(path, ".")}, nil
	}
}

type rule struct {
	kind, name string
	expr       *Expression
}

type generatedColumn struct {
	index int
	name  string
	t     DataType
	expr  *Expression
}

type identityColumn struct {
	index         int
	name          string
	t             DataType
	start, step   int64
	hwm           int64
	hasHWM        bool
	allowExplicit bool
}

// tableConstraints is what a row must satisfy, compiled from one metaData.
type tableConstraints struct {
	schema    *Schema // the snapshot schema it was compiled for
	names     []string
	rules     []rule
	generated []generatedColumn
	identity  []identityColumn
	err       error // an expression outside what we evaluate
}

func (c *tableConstraints) empty() bool {
	return c.err == nil && len(c.rules) == 0 && len(c.generated) == 0 && len(c.identity) == 0
}

func metaString(m map[string]any, k string) (string, bool) {
	v, ok := m[k]
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	}
	return fmt.Sprint(v), true
}

func compileConstraints(md Metadata, sc *Schema) *tableConstraints {
	c := &tableConstraints{schema: sc}
	tree, err := parseSchemaTree(md.SchemaString)
	if err != nil {
		c.err = err
		return c
	}
	res := tree.resolver()
	for _, n := range tree.top {
		c.names = append(c.names, n.name)
	}
	refuse := func(what string, sql string, err error) {
		if c.err == nil {
			c.err = fmt.Errorf("%s (%s) cannot be enforced: %v: %w", what, sql, err, ErrUnsupportedFeature)
		}
	}
	var walk func(nodes []*schemaNode, prefix string, top bool)
	walk = func(nodes []*schemaNode, prefix string, top bool) {
		for i, n := range nodes {
			full := prefix + n.name
			if inv, ok := metaString(n.metadata, "delta.invariants"); ok {
				var j struct {
					Expression struct {
						Expression string `json:"expression"`
					} `json:"expression"`
				}
				if err := json.Unmarshal([]byte(inv), &j); err != nil || j.Expression.Expression == "" {
					refuse("invariant of column "+full, inv, errors.New("not {\"expression\":{\"expression\":…}}"))
				} else if e, err := compileExpr(j.Expression.Expression, res); err != nil {
					refuse("invariant of column "+full, j.Expression.Expression, err)
				} else {
					c.rules = append(c.rules, rule{kind: "invariant", name: full, expr: e})
				}
			}
			if g, ok := metaString(n.metadata, "delta.generationExpression"); ok {
				e, err := compileExpr(g, res)
				switch {
				case err != nil:
					refuse("generated column "+full, g, err)
				case !top:
					refuse("generated column "+full, g, errors.New("generated nested fields are not supported"))
				case n.prim.Kind == KindInvalid:
					refuse("generated column "+full, g, errors.New("the column has a nested type"))
				case !castAllowed(e.Type().Kind, n.prim.Kind):
					refuse("generated column "+full, g, fmt.Errorf("a %s cannot be stored in a %s column", e.Type(), n.prim))
				default:
					c.generated = append(c.generated, generatedColumn{index: i, name: full, t: n.prim, expr: e})
				}
			}
			if _, ok := n.metadata["delta.identity.start"]; ok && top {
				id, err := parseIdentity(n)
				if err != nil {
					refuse("identity column "+full, "", err)
				} else {
					id.index = i
					c.identity = append(c.identity, id)
				}
			}
			if n.fields != nil {
				walk(n.fields, full+".", false)
			}
		}
	}
	walk(tree.top, "", true)
	for k, v := range md.Configuration {
		if name, ok := strings.CutPrefix(k, "delta.constraints."); ok {
			e, err := compileExpr(v, res)
			if err != nil {
				refuse("CHECK constraint "+name, v, err)
				continue
			}
			c.rules = append(c.rules, rule{kind: "CHECK constraint", name: name, expr: e})
		}
	}
	return c
}

func parseIdentity(n *schemaNode) (identityColumn, error) {
	id := identityColumn{name: n.name, t: n.prim}
	if !isIntegral(n.prim.Kind) {
		return id, fmt.Errorf("identity column of type %s", n.prim)
	}
	num := func(k string) (int64, bool, error) {
		s, ok := metaString(n.metadata, k)
		if !ok {
			return 0, false, nil
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, true, fmt.Errorf("%s=%q is not a long", k, s)
		}
		return v, true, nil
	}
	var err error
	if id.start, _, err = num("delta.identity.start"); err != nil {
		return id, err
	}
	var ok bool
	if id.step, ok, err = num("delta.identity.step"); err != nil {
		return id, err
	}
	if !ok || id.step == 0 {
		return id, errors.New("delta.identity.step is missing or 0")
	}
	if id.hwm, id.hasHWM, err = num("delta.identity.highWaterMark"); err != nil {
		return id, err
	}
	s, _ := metaString(n.metadata, "delta.identity.allowExplicitInsert")
	id.allowExplicit = strings.EqualFold(s, "true")
	return id, nil
}

// constraints returns the compiled constraints of the current metaData;
// the caller holds t.mu.
func (t *Table) constraintsLocked() *tableConstraints {
	if c := t.cons; c != nil && c.schema == t.snap.schema {
		return c
	}
	t.cons = compileConstraints(t.snap.metadata, t.snap.schema)
	return t.cons
}

// CheckRow fills the generated columns of one record and checks it against
// the table's invariants, CHECK constraints, generated columns and identity
// columns (an explicit value for a GENERATED ALWAYS identity column is a
// violation). row is in the column order of schema, which may be a batch
// schema wider or narrower than the table: columns are matched by name, and
// generated values are written into row where schema has the column. A
// record problem is a *ConstraintError; an error wrapping
// ErrUnsupportedFeature means the table holds an expression this engine
// cannot evaluate (no record can be written).
func (t *Table) CheckRow(schema *Schema, row Row) error {
	t.mu.Lock()
	c := t.constraintsLocked()
	t.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if c.empty() {
		return nil
	}
	if schema == nil {
		schema = c.schema
	}
	if len(row) != schema.Len() {
		return fmt.Errorf("row has %d values, the schema has %d columns", len(row), schema.Len())
	}
	// Evaluate on a row in table order.
	tr := make(Row, len(c.names))
	src := make([]int, len(c.names))
	for i, n := range c.names {
		src[i] = schema.Index(n)
		if src[i] >= 0 {
			tr[i] = row[src[i]]
		}
	}
	if err := c.checkTableRow(tr); err != nil {
		return err
	}
	for _, g := range c.generated {
		if s := src[g.index]; s >= 0 {
			row[s] = tr[g.index]
		}
	}
	return nil
}

// checkTableRow fills generated columns of r (table order; extra trailing
// columns allowed) and checks every rule. Identity columns are checked for
// explicit values; allocation happens in allocateIdentity.
func (c *tableConstraints) checkTableRow(r Row) error {
	for _, id := range c.identity {
		if v := r[id.index]; v != nil && !id.allowExplicit {
			return &ConstraintError{Kind: "identity column", Name: id.name, Reason: fmt.Sprintf("it is GENERATED ALWAYS and the record gives %s", formatValue(toInternal(v), id.t))}
		}
	}
	for _, g := range c.generated {
		v, err := g.expr.Eval(r)
		if err == nil {
			v, err = castValue(toInternal(v), g.expr.Type(), g.t)
			if err == nil {
				v, err = toRowValue(v, g.t)
			}
		}
		if err != nil {
			return &ConstraintError{Kind: "generated column", Name: g.name, Expression: g.expr.sql, Values: g.expr.describeColumns(r), Reason: err.Error()}
		}
		if given := r[g.index]; given != nil {
			gi, vi := toInternal(given), toInternal(v)
			if vi == nil || compareValues(gi, vi) != 0 {
				return &ConstraintError{Kind: "generated column", Name: g.name, Expression: g.expr.sql,
					Reason: fmt.Sprintf("the record gives %s but the expression gives %s (%s)", formatValue(gi, g.t), formatValue(vi, g.t), g.expr.describeColumns(r))}
			}
			continue
		}
		r[g.index] = v
	}
	for _, ru := range c.rules {
		v, err := ru.expr.Eval(r)
		if err != nil {
			return &ConstraintError{Kind: ru.kind, Name: ru.name, Expression: ru.expr.sql, Values: ru.expr.describeColumns(r), Reason: err.Error()}
		}
		// An invariant fails on FALSE or NULL, a CHECK constraint on FALSE.
		if v == false || (v == nil && ru.kind == "invariant") {
			return &ConstraintError{Kind: ru.kind, Name: ru.name, Expression: ru.expr.sql, Values: ru.expr.describeColumns(r)}
		}
	}
	return nil
}

// allocateIdentity gives every null identity value of rows the next value
// after the high-water mark and returns the new marks by column (only
// generated values move the mark, as Spark does).
func (c *tableConstraints) allocateIdentity(rows []Row) (map[string]int64, error) {
	marks := map[string]int64{}
	for _, id := range c.identity {
		next := id.start
		if id.hasHWM {
			n, ok := addInt64(id.hwm, id.step)
			if !ok {
				return nil, fmt.Errorf("identity column %s: the next value after %d overflows", id.name, id.hwm)
			}
			next = n
		}
		last, allocated, overflowed := int64(0), false, false
		for _, r := range rows {
			if r[id.index] != nil {
				continue
			}
			if overflowed {
				return nil, fmt.Errorf("identity column %s: the next value after %d overflows", id.name, last)
			}
			if err := checkIntRange(next, id.t.Kind); err != nil {
				return nil, fmt.Errorf("identity column %s: %w", id.name, err)
			}
			v, _ := toRowValue(next, id.t)
			r[id.index] = v
			last, allocated = next, true
			n, ok := addInt64(next, id.step)
			overflowed = !ok
			next = n
		}
		if allocated {
			marks[id.name] = last
		}
	}
	return marks, nil
}

func addInt64(a, b int64) (int64, bool) {
	r := a + b
	if (a > 0 && b > 0 && r < 0) || (a < 0 && b < 0 && r >= 0) {
		return 0, false
	}
	return r, true
}

// withHighWaterMarks returns schemaString with the given columns'
// delta.identity.highWaterMark replaced; everything else is kept.
func withHighWaterMarks(schemaString string, marks map[string]int64) (string, error) {
	var st map[string]any
	dec := json.NewDecoder(strings.NewReader(schemaString))
	dec.UseNumber()
	if err := dec.Decode(&st); err != nil {
		return "", fmt.Errorf("updating identity high-water marks: %w", err)
	}
	fields, _ := st["fields"].([]any)
	for _, f := range fields {
		fm, _ := f.(map[string]any)
		name, _ := fm["name"].(string)
		m, ok := marks[name]
		if !ok {
			continue
		}
		md, _ := fm["metadata"].(map[string]any)
		if md == nil {
			md = map[string]any{}
			fm["metadata"] = md
		}
		md["delta.identity.highWaterMark"] = json.Number(strconv.FormatInt(m, 10))
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("updating identity high-water marks: %w", err)
	}
	return string(b), nil
}

// enforceConstraints runs in Append on the rows in the target schema's
// order (the table's columns first): generated columns are filled,
// constraints checked, identity values allocated. Rows are copied before
// being filled so a caller retrying the batch after a conflict passes the
// same input again. It returns the rows and the metaData to commit (newMeta,
// or a copy of the current one, with new high-water marks), or newMeta
// unchanged when no identity value was allocated.
func (t *Table) enforceConstraints(rows []Row, newMeta *Metadata) ([]Row, *Metadata, error) {
	c := t.constraintsLocked()
	if c.err != nil {
		return nil, nil, c.err
	}
	if c.empty() || len(rows) == 0 {
		return rows, newMeta, nil
	}
	out := make([]Row, len(rows))
	for i, r := range rows {
		nr := make(Row, len(r))
		copy(nr, r)
		if err := c.checkTableRow(nr); err != nil {
			return nil, nil, fmt.Errorf("row %d: %w", i, err)
		}
		out[i] = nr
	}
	if len(c.identity) == 0 {
		return out, newMeta, nil
	}
	marks, err := c.allocateIdentity(out)
	if err != nil {
		return nil, nil, err
	}
	if len(marks) == 0 {
		return out, newMeta, nil
	}
	md := t.snap.metadata
	if newMeta != nil {
		md = *newMeta
	}
	s, err := withHighWaterMarks(md.SchemaString, marks)
	if err != nil {
		return nil, nil, err
	}
	md.SchemaString = s
	return out, &md, nil
}
