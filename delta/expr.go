package delta

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// This file parses the Spark SQL expressions Delta tables carry in their
// metadata (column invariants, CHECK constraints, generation expressions)
// into an AST, types it against a schema (bind) and evaluates it on rows.
// Only deterministic, row-local expressions are accepted.

// ExprError is a parse or binding error of an expression: it names the
// expression and the 0-based byte position of the problem.
type ExprError struct {
	Expr string
	Pos  int
	Msg  string
}

// Error reads `expression "x >" at position 3: unexpected end of expression`.
func (e *ExprError) Error() string {
	return fmt.Sprintf("expression %q at position %d: %s", e.Expr, e.Pos, e.Msg)
}

type tokKind uint8

const (
	tokEOF tokKind = iota
	tokNumber
	tokString
	tokIdent  // bare identifier or keyword
	tokQIdent // `quoted identifier`
	tokOp
)

type token struct {
	kind tokKind
	text string // the identifier, the unescaped string, the number text or the operator
	pos  int
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	fail := func(pos int, format string, a ...any) error {
		return &ExprError{Expr: src, Pos: pos, Msg: fmt.Sprintf(format, a...)}
	}
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c >= '0' && c <= '9' || (c == '.' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9'):
			start := i
			for i < len(src) && src[i] >= '0' && src[i] <= '9' {
				i++
			}
			if i < len(src) && src[i] == '.' {
				i++
				for i < len(src) && src[i] >= '0' && src[i] <= '9' {
					i++
				}
			}
			if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
				j := i + 1
				if j < len(src) && (src[j] == '+' || src[j] == '-') {
					j++
				}
				if j < len(src) && src[j] >= '0' && src[j] <= '9' {
					for j < len(src) && src[j] >= '0' && src[j] <= '9' {
						j++
					}
					i = j
				}
			}
			// Type suffixes: L, S, Y, D, F, BD (case-insensitive).
			rest := strings.ToUpper(src[i:min(i+2, len(src))])
			switch {
			case strings.HasPrefix(rest, "BD"):
				i += 2
			case len(rest) > 0 && strings.ContainsRune("LSYDF", rune(rest[0])):
				i++
			}
			if i < len(src) && (isIdentByte(src[i])) {
				return nil, fail(start, "malformed number %q", src[start:i+1])
			}
			toks = append(toks, token{kind: tokNumber, text: src[start:i], pos: start})
		case c == '\'' || c == '"':
			start := i
			i++
			var b strings.Builder
			closed := false
			for i < len(src) {
				ch := src[i]
				if ch == c {
					i++
					closed = true
					break
				}
				if ch == '\\' && i+1 < len(src) {
					e := src[i+1]
					i += 2
					switch e {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case 'b':
						b.WriteByte('\b')
					case '0':
						b.WriteByte(0)
					case 'Z':
						b.WriteByte(26)
					case '%', '_':
						// Spark keeps these escaped so LIKE sees them.
						b.WriteByte('\\')
						b.WriteByte(e)
					case 'u':
						if i+4 <= len(src) {
							if n, err := strconv.ParseUint(src[i:i+4], 16, 32); err == nil {
								b.WriteRune(rune(n))
								i += 4
								continue
							}
						}
						return nil, fail(i-2, "malformed \\u escape")
					default:
						b.WriteByte(e)
					}
					continue
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return nil, fail(start, "unterminated string literal")
			}
			toks = append(toks, token{kind: tokString, text: b.String(), pos: start})
		case c == '`':
			start := i
			i++
			var b strings.Builder
			closed := false
			for i < len(src) {
				if src[i] == '`' {
					if i+1 < len(src) && src[i+1] == '`' {
						b.WriteByte('`')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(src[i])
				i++
			}
			if !closed {
				return nil, fail(start, "unterminated backticked identifier")
			}
			toks = append(toks, token{kind: tokQIdent, text: b.String(), pos: start})
		case isIdentStart(src[i:]):
			start := i
			for i < len(src) {
				r, n := utf8.DecodeRuneInString(src[i:])
				if !(r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
					break
				}
				i += n
			}
			toks = append(toks, token{kind: tokIdent, text: src[start:i], pos: start})
		default:
			start := i
			op := ""
			for _, cand := range []string{"<=>", "<>", "!=", "<=", ">=", "==", "||", "=", "<", ">", "+", "-", "*", "/", "%", "(", ")", ",", ".", "!"} {
				if strings.HasPrefix(src[i:], cand) {
					op = cand
					break
				}
			}
			if op == "" {
				r, _ := utf8.DecodeRuneInString(src[i:])
				return nil, fail(start, "unexpected character %q", r)
			}
			i += len(op)
			toks = append(toks, token{kind: tokOp, text: op, pos: start})
		}
	}
	toks = append(toks, token{kind: tokEOF, pos: len(src)})
	return toks, nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isIdentStart(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return r == '_' || unicode.IsLetter(r)
}

type astKind uint8

const (
	astLit     astKind = iota // lit, litType
	astCol                    // path
	astUnary                  // op ("-", "not"), args[0]
	astBinary                 // op, args[0], args[1]
	astIsNull                 // not, args[0]
	astIn                     // not, args[0] in args[1:]
	astBetween                // not, args[0] between args[1] and args[2]
	astLike                   // not, args[0] like args[1]
	astCast                   // args[0], castType
	astCase                   // args: [operand?] when/then pairs [else]; hasOperand, hasElse
	astFunc                   // name, args
)

type ast struct {
	kind       astKind
	pos        int
	op         string
	name       string
	path       []string
	lit        any
	litType    DataType
	args       []*ast
	not        bool
	castType   DataType
	hasOperand bool
	hasElse    bool
}

type parser struct {
	src  string
	toks []token
	i    int
}

// parseExpr parses one Spark SQL expression.
func parseExpr(src string) (*ast, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if p.peek().kind == tokEOF {
		return nil, p.errAt(p.peek(), "empty expression")
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errAt(t, "unexpected %s after the end of the expression", describeTok(t))
	}
	return e, nil
}

func describeTok(t token) string {
	switch t.kind {
	case tokEOF:
		return "end of expression"
	case tokString:
		return "string " + strconv.Quote(t.text)
	case tokQIdent:
		return "`" + t.text + "`"
	}
	return strconv.Quote(t.text)
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(t token, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	if t.kind == tokEOF && !strings.Contains(msg, "end of expression") {
		msg += " (at the end of the expression)"
	}
	return &ExprError{Expr: p.src, Pos: t.pos, Msg: msg}
}

// isKw reports whether t is the (unquoted, case-insensitive) keyword kw.
func isKw(t token, kw string) bool { return t.kind == tokIdent && strings.EqualFold(t.text, kw) }

func isOp(t token, op string) bool { return t.kind == tokOp && t.text == op }

func (p *parser) acceptKw(kw string) bool {
	if isKw(p.peek(), kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) acceptOp(op string) bool {
	if isOp(p.peek(), op) {
		p.i++
		return true
	}
	return false
}

func (p *parser) expectKw(kw string) error {
	if !p.acceptKw(kw) {
		return p.errAt(p.peek(), "expected %s, found %s", kw, describeTok(p.peek()))
	}
	return nil
}

func (p *parser) expectOp(op string) error {
	if !p.acceptOp(op) {
		return p.errAt(p.peek(), "expected %q, found %s", op, describeTok(p.peek()))
	}
	return nil
}

func (p *parser) parseOr() (*ast, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for isKw(p.peek(), "OR") {
		t := p.next()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: astBinary, op: "or", pos: t.pos, args: []*ast{l, r}}
	}
	return l, nil
}

func (p *parser) parseAnd() (*ast, error) {
	l, err := p.parseNot()
	if err != nil {
		return nil, err
	}
	for isKw(p.peek(), "AND") {
		t := p.next()
		r, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: astBinary, op: "and", pos: t.pos, args: []*ast{l, r}}
	}
	return l, nil
}

func (p *parser) parseNot() (*ast, error) {
	if t := p.peek(); isKw(t, "NOT") || isOp(t, "!") {
		p.next()
		e, err := p.parseNot()
		if err != nil {
			return nil, err
		}
		return &ast{kind: astUnary, op: "not", pos: t.pos, args: []*ast{e}}, nil
	}
	return p.parsePredicate()
}

var comparisonOps = map[string]string{"=": "=", "==": "=", "<>": "!=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">=", "<=>": "<=>"}

func (p *parser) parsePredicate() (*ast, error) {
	l, err := p.parseAdditive()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t.kind == tokOp {
			if op, ok := comparisonOps[t.text]; ok {
				p.next()
				r, err := p.parseAdditive()
				if err != nil {
					return nil, err
				}
				l = &ast{kind: astBinary, op: op, pos: t.pos, args: []*ast{l, r}}
				continue
			}
			return l, nil
		}
		if isKw(t, "IS") {
			p.next()
			not := p.acceptKw("NOT")
			if err := p.expectKw("NULL"); err != nil {
				return nil, err
			}
			l = &ast{kind: astIsNull, not: not, pos: t.pos, args: []*ast{l}}
			continue
		}
		not := false
		if isKw(t, "NOT") {
			nt := p.toks[p.i+1]
			if !isKw(nt, "IN") && !isKw(nt, "BETWEEN") && !isKw(nt, "LIKE") {
				return l, nil
			}
			p.next()
			not = true
			t = p.peek()
		}
		switch {
		case isKw(t, "IN"):
			p.next()
			if err := p.expectOp("("); err != nil {
				return nil, err
			}
			args := []*ast{l}
			for {
				e, err := p.parseOr()
				if err != nil {
					return nil, err
				}
				args = append(args, e)
				if p.acceptOp(",") {
					continue
				}
				if err := p.expectOp(")"); err != nil {
					return nil, err
				}
				break
			}
			l = &ast{kind: astIn, not: not, pos: t.pos, args: args}
		case isKw(t, "BETWEEN"):
			p.next()
			lo, err := p.parseAdditive()
			if err != nil {
				return nil, err
			}
			if err := p.expectKw("AND"); err != nil {
				return nil, err
			}
			hi, err := p.parseAdditive()
			if err != nil {
				return nil, err
			}
			l = &ast{kind: astBetween, not: not, pos: t.pos, args: []*ast{l, lo, hi}}
		case isKw(t, "LIKE"):
			p.next()
			pat, err := p.parseAdditive()
			if err != nil {
				return nil, err
			}
			l = &ast{kind: astLike, not: not, pos: t.pos, args: []*ast{l, pat}}
		default:
			return l, nil
		}
	}
}

func (p *parser) parseAdditive() (*ast, error) {
	l, err := p.parseMultiplicative()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if !isOp(t, "+") && !isOp(t, "-") && !isOp(t, "||") {
			return l, nil
		}
		p.next()
		r, err := p.parseMultiplicative()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: astBinary, op: t.text, pos: t.pos, args: []*ast{l, r}}
	}
}

func (p *parser) parseMultiplicative() (*ast, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if !isOp(t, "*") && !isOp(t, "/") && !isOp(t, "%") {
			return l, nil
		}
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = &ast{kind: astBinary, op: t.text, pos: t.pos, args: []*ast{l, r}}
	}
}

func (p *parser) parseUnary() (*ast, error) {
	t := p.peek()
	if isOp(t, "-") || isOp(t, "+") {
		p.next()
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return e, nil
		}
		return &ast{kind: astUnary, op: "-", pos: t.pos, args: []*ast{e}}, nil
	}
	return p.parsePrimary()
}

var reservedWords = map[string]bool{
	"AND": true, "OR": true, "NOT": true, "IS": true, "IN": true, "BETWEEN": true, "LIKE": true,
	"THEN": true, "WHEN": true, "ELSE": true, "END": true, "AS": true,
}

func (p *parser) parsePrimary() (*ast, error) {
	t := p.next()
	switch t.kind {
	case tokEOF:
		return nil, p.errAt(t, "unexpected end of expression")
	case tokNumber:
		return p.numberLiteral(t)
	case tokString:
		return &ast{kind: astLit, pos: t.pos, lit: t.text, litType: DataType{Kind: KindString}}, nil
	case tokOp:
		if t.text == "(" {
			e, err := p.parseOr()
			if err != nil {
				return nil, err
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			return e, nil
		}
		return nil, p.errAt(t, "unexpected %s", describeTok(t))
	case tokQIdent:
		return p.columnRef(t)
	}
	// Bare identifier: keyword, literal, function or column.
	up := strings.ToUpper(t.text)
	switch up {
	case "NULL":
		return &ast{kind: astLit, pos: t.pos, lit: nil, litType: DataType{}}, nil
	case "TRUE", "FALSE":
		return &ast{kind: astLit, pos: t.pos, lit: up == "TRUE", litType: DataType{Kind: KindBoolean}}, nil
	case "DATE", "TIMESTAMP":
		if s := p.peek(); s.kind == tokString {
			p.next()
			if up == "DATE" {
				d, err := castStringToDate(s.text)
				if err != nil {
					return nil, p.errAt(s, "invalid DATE literal %q", s.text)
				}
				return &ast{kind: astLit, pos: t.pos, lit: d, litType: DataType{Kind: KindDate}}, nil
			}
			ts, err := castStringToTimestamp(s.text)
			if err != nil {
				return nil, p.errAt(s, "invalid TIMESTAMP literal %q", s.text)
			}
			return &ast{kind: astLit, pos: t.pos, lit: ts, litType: DataType{Kind: KindTimestamp}}, nil
		}
	case "CAST":
		if isOp(p.peek(), "(") {
			return p.cast(t)
		}
	case "CASE":
		return p.caseExpr(t)
	}
	if reservedWords[up] {
		return nil, p.errAt(t, "unexpected keyword %s", up)
	}
	if isOp(p.peek(), "(") {
		return p.function(t)
	}
	return p.columnRef(t)
}

func (p *parser) numberLiteral(t token) (*ast, error) {
	s := t.text
	up := strings.ToUpper(s)
	bad := func() error { return p.errAt(t, "invalid number %q", s) }
	body := func(n int) string { return s[:len(s)-n] }
	integral := func(n int) bool { return !strings.ContainsAny(body(n), ".eE") }
	switch {
	case strings.HasSuffix(up, "BD"):
		d, err := decimalLiteral(body(2))
		if err != nil {
			return nil, bad()
		}
		return d.at(t.pos), nil
	case strings.HasSuffix(up, "L"), strings.HasSuffix(up, "S"), strings.HasSuffix(up, "Y"):
		if !integral(1) {
			return nil, bad()
		}
		n, err := strconv.ParseInt(body(1), 10, 64)
		if err != nil {
			return nil, p.errAt(t, "number %q is out of range for its type", s)
		}
		k := map[byte]Kind{'L': KindLong, 'S': KindShort, 'Y': KindByte}[up[len(up)-1]]
		if err := checkIntRange(n, k); err != nil {
			return nil, p.errAt(t, "number %q is out of range for its type", s)
		}
		return &ast{kind: astLit, pos: t.pos, lit: n, litType: DataType{Kind: k}}, nil
	case strings.HasSuffix(up, "D"), strings.HasSuffix(up, "F"):
		f, err := strconv.ParseFloat(body(1), 64)
		if err != nil {
			return nil, bad()
		}
		k := KindDouble
		if strings.HasSuffix(up, "F") {
			k = KindFloat
			f = float64(float32(f))
		}
		return &ast{kind: astLit, pos: t.pos, lit: f, litType: DataType{Kind: k}}, nil
	}
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, bad()
		}
		return &ast{kind: astLit, pos: t.pos, lit: f, litType: DataType{Kind: KindDouble}}, nil
	}
	if !strings.Contains(s, ".") {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			if checkIntRange(n, KindInteger) == nil {
				return &ast{kind: astLit, pos: t.pos, lit: n, litType: DataType{Kind: KindInteger}}, nil
			}
			return &ast{kind: astLit, pos: t.pos, lit: n, litType: DataType{Kind: KindLong}}, nil
		}
	}
	d, err := decimalLiteral(s)
	if err != nil {
		return nil, bad()
	}
	return d.at(t.pos), nil
}

type decLit struct {
	d Decimal
	t DataType
}

func (d decLit) at(pos int) *ast {
	return &ast{kind: astLit, pos: pos, lit: d.d, litType: d.t}
}

// decimalLiteral types 12.50 as decimal(4,2), as Spark does.
func decimalLiteral(s string) (decLit, error) {
	scale := 0
	if i := strings.IndexByte(s, '.'); i >= 0 {
		scale = len(s) - i - 1
	}
	d, err := ParseDecimal(s, 38, scale)
	if err != nil {
		return decLit{}, err
	}
	prec := max(decimalDigits(d.Unscaled), scale, 1)
	if prec > 38 {
		return decLit{}, errors.New("too many digits")
	}
	return decLit{d: d, t: DataType{Kind: KindDecimal, Precision: prec, Scale: scale}}, nil
}

func (p *parser) columnRef(t token) (*ast, error) {
	path := []string{t.text}
	for isOp(p.peek(), ".") {
		p.next()
		n := p.next()
		if n.kind != tokIdent && n.kind != tokQIdent {
			return nil, p.errAt(n, "expected a field name after '.', found %s", describeTok(n))
		}
		path = append(path, n.text)
	}
	return &ast{kind: astCol, pos: t.pos, path: path}, nil
}

func (p *parser) function(name token) (*ast, error) {
	p.next() // (
	f := &ast{kind: astFunc, pos: name.pos, name: strings.ToLower(name.text)}
	if p.acceptOp(")") {
		return f, nil
	}
	for {
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		f.args = append(f.args, e)
		if p.acceptOp(",") {
			continue
		}
		if err := p.expectOp(")"); err != nil {
			return nil, err
		}
		return f, nil
	}
}

func (p *parser) cast(t token) (*ast, error) {
	p.next() // (
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if err := p.expectKw("AS"); err != nil {
		return nil, err
	}
	tt := p.next()
	if tt.kind != tokIdent {
		return nil, p.errAt(tt, "expected a type name, found %s", describeTok(tt))
	}
	name := strings.ToLower(tt.text)
	var params []string
	if p.acceptOp("(") {
		for {
			n := p.next()
			if n.kind != tokNumber {
				return nil, p.errAt(n, "expected a number in the type parameters, found %s", describeTok(n))
			}
			params = append(params, n.text)
			if p.acceptOp(",") {
				continue
			}
			if err := p.expectOp(")"); err != nil {
				return nil, err
			}
			break
		}
	}
	var dt DataType
	switch name {
	case "varchar", "char":
		dt = DataType{Kind: KindString} // length limits are not enforced here
	default:
		spelled := name
		if len(params) > 0 {
			spelled += "(" + strings.Join(params, ",") + ")"
		}
		dt, err = ParseType(spelled)
		if err != nil {
			return nil, p.errAt(tt, "unsupported type %s in CAST", spelled)
		}
	}
	if err := p.expectOp(")"); err != nil {
		return nil, err
	}
	return &ast{kind: astCast, pos: t.pos, castType: dt, args: []*ast{e}}, nil
}

func (p *parser) caseExpr(t token) (*ast, error) {
	c := &ast{kind: astCase, pos: t.pos}
	if !isKw(p.peek(), "WHEN") {
		op, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		c.hasOperand = true
		c.args = append(c.args, op)
	}
	for p.acceptKw("WHEN") {
		w, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if err := p.expectKw("THEN"); err != nil {
			return nil, err
		}
		th, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		c.args = append(c.args, w, th)
	}
	if len(c.args) < 2 || (c.hasOperand && len(c.args) < 3) {
		return nil, p.errAt(p.peek(), "CASE needs at least one WHEN … THEN …, found %s", describeTok(p.peek()))
	}
	if p.acceptKw("ELSE") {
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		c.args = append(c.args, e)
		c.hasElse = true
	}
	if err := p.expectKw("END"); err != nil {
		return nil, err
	}
	return c, nil
}

// ---- binding and evaluation ----
//
// Semantics (documented choices): NULL propagates through operators and
// functions; AND/OR use SQL three-valued logic; integer overflow in
// arithmetic or casts is an error (Spark ANSI); division or modulo by zero
// gives NULL (Spark non-ANSI); a string that does not parse in a CAST is an
// error (ANSI); date/time functions use UTC as the session time zone.
// Values inside evaluation are int64 (all integral types), float64 (float,
// double), *big.Rat (decimal), string, []byte, bool, time.Time.

// exprColumn is a resolved column reference.
type exprColumn struct {
	get  func(Row) any
	t    DataType
	name string
}

// columnResolver resolves a (possibly nested) column path.
type columnResolver func(path []string) (exprColumn, error)

type cexpr struct {
	t    DataType // KindInvalid: the NULL type
	eval func(Row) (any, error)
}

func isIntegral(k Kind) bool {
	return k == KindLong || k == KindInteger || k == KindShort || k == KindByte
}
func isNumeric(k Kind) bool {
	return isIntegral(k) || k == KindFloat || k == KindDouble || k == KindDecimal
}

var intRank = map[Kind]int{KindByte: 1, KindShort: 2, KindInteger: 3, KindLong: 4}

func checkIntRange(n int64, k Kind) error {
	var lo, hi int64
	switch k {
	case KindByte:
		lo, hi = math.MinInt8, math.MaxInt8
	case KindShort:
		lo, hi = math.MinInt16, math.MaxInt16
	case KindInteger:
		lo, hi = math.MinInt32, math.MaxInt32
	default:
		return nil
	}
	if n < lo || n > hi {
		return fmt.Errorf("%d overflows %s", n, k)
	}
	return nil
}

func toInternal(v any) any {
	switch x := v.(type) {
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case int:
		return int64(x)
	case float32:
		return float64(x)
	case Decimal:
		if x.Unscaled == nil {
			return nil
		}
		return new(big.Rat).SetFrac(x.Unscaled, pow10(x.Scale))
	}
	return v
}

func pow10(n int) *big.Int { return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil) }

// toRowValue converts an internal value of type t to the Go type of Row.
func toRowValue(v any, t DataType) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch t.Kind {
	case KindInteger:
		return int32(v.(int64)), nil
	case KindShort:
		return int16(v.(int64)), nil
	case KindByte:
		return int8(v.(int64)), nil
	case KindFloat:
		return float32(v.(float64)), nil
	case KindDecimal:
		r := v.(*big.Rat)
		u, err := ratToScale(r, t.Scale)
		if err != nil {
			return nil, err
		}
		if decimalDigits(u) > t.Precision {
			return nil, fmt.Errorf("%s overflows %s", r.FloatString(t.Scale), t)
		}
		return Decimal{Unscaled: u, Scale: t.Scale}, nil
	case KindDate:
		tm := v.(time.Time).UTC()
		return time.Date(tm.Year(), tm.Month(), tm.Day(), 0, 0, 0, 0, time.UTC), nil
	case KindTimestamp:
		return v.(time.Time).UTC().Truncate(time.Microsecond), nil
	}
	return v, nil
}

// ratToScale rounds r half-up (away from zero) to scale digits.
func ratToScale(r *big.Rat, scale int) (*big.Int, error) {
	x := new(big.Rat).Mul(r, new(big.Rat).SetInt(pow10(scale)))
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int))
	if m.Sign() != 0 {
		twice := new(big.Int).Mul(new(big.Int).Abs(m), big.NewInt(2))
		if twice.Cmp(x.Denom()) >= 0 {
			if x.Sign() < 0 {
				q.Sub(q, big.NewInt(1))
			} else {
				q.Add(q, big.NewInt(1))
			}
		}
	}
	return q, nil
}

// commonType is the type both operands are converted to; forCompare uses
// Spark's comparison coercions (a string compared with a number becomes a
// double, with a date a date).
func commonType(a, b DataType, forCompare bool) (DataType, bool) {
	switch {
	case a.Kind == KindInvalid:
		return b, true
	case b.Kind == KindInvalid:
		return a, true
	case a.Kind == b.Kind && a.Kind != KindDecimal:
		return a, true
	case isNumeric(a.Kind) && isNumeric(b.Kind):
		if a.Kind == KindDouble || b.Kind == KindDouble || a.Kind == KindFloat || b.Kind == KindFloat {
			return DataType{Kind: KindDouble}, true
		}
		if a.Kind == KindDecimal || b.Kind == KindDecimal {
			da, db := asDecimalType(a), asDecimalType(b)
			s := max(da.Scale, db.Scale)
			p := min(38, max(da.Precision-da.Scale, db.Precision-db.Scale)+s)
			return DataType{Kind: KindDecimal, Precision: p, Scale: s}, true
		}
		if intRank[a.Kind] >= intRank[b.Kind] {
			return a, true
		}
		return b, true
	case (a.Kind == KindDate && b.Kind == KindTimestamp) || (a.Kind == KindTimestamp && b.Kind == KindDate):
		return DataType{Kind: KindTimestamp}, true
	case a.Kind == KindString || b.Kind == KindString:
		o := a
		if a.Kind == KindString {
			o = b
		}
		if !forCompare {
			return DataType{Kind: KindString}, true
		}
		switch {
		case isNumeric(o.Kind):
			return DataType{Kind: KindDouble}, true
		case o.Kind == KindDate, o.Kind == KindTimestamp, o.Kind == KindBoolean:
			return o, true
		}
	}
	return DataType{}, false
}

func asDecimalType(t DataType) DataType {
	switch t.Kind {
	case KindDecimal:
		return t
	case KindByte:
		return DataType{Kind: KindDecimal, Precision: 3}
	case KindShort:
		return DataType{Kind: KindDecimal, Precision: 5}
	case KindInteger:
		return DataType{Kind: KindDecimal, Precision: 10}
	}
	return DataType{Kind: KindDecimal, Precision: 20}
}

func castStringToDate(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " T"); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, "-")
	if len(parts) > 3 || len(parts[0]) != 4 {
		return time.Time{}, fmt.Errorf("%q is not a date", s)
	}
	nums := []int{0, 1, 1}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || (i > 0 && (len(p) < 1 || len(p) > 2)) {
			return time.Time{}, fmt.Errorf("%q is not a date", s)
		}
		nums[i] = n
	}
	d := time.Date(nums[0], time.Month(nums[1]), nums[2], 0, 0, 0, 0, time.UTC)
	if d.Month() != time.Month(nums[1]) || d.Day() != nums[2] {
		return time.Time{}, fmt.Errorf("%q is not a valid date", s)
	}
	return d, nil
}

func castStringToTimestamp(s string) (time.Time, error) {
	t, err := ParseTimestamp(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a timestamp", s)
	}
	return t, nil
}

// javaDouble formats like Java's Double.toString, as Spark casts to string.
func javaDouble(f float64, bits int) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	a := math.Abs(f)
	if a == 0 || (a >= 1e-3 && a < 1e7) {
		s := strconv.FormatFloat(f, 'f', -1, bits)
		if !strings.Contains(s, ".") {
			s += ".0"
		}
		return s
	}
	s := strconv.FormatFloat(f, 'E', -1, bits)
	mant, exp, _ := strings.Cut(s, "E")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	exp = strings.TrimPrefix(exp, "+")
	neg := strings.HasPrefix(exp, "-")
	exp = strings.TrimLeft(strings.TrimPrefix(exp, "-"), "0")
	if neg {
		exp = "-" + exp
	}
	return mant + "E" + exp
}

func castAllowed(from, to Kind) bool {
	if from == KindInvalid || from == to || to == KindString {
		return true
	}
	switch to {
	case KindBinary:
		return from == KindString
	case KindBoolean:
		return isNumeric(from) || from == KindString
	case KindDate:
		return from == KindString || from == KindTimestamp
	case KindTimestamp:
		return from == KindString || from == KindDate || isNumeric(from)
	}
	// numeric targets
	return isNumeric(from) || from == KindString || from == KindBoolean || from == KindTimestamp
}

// castValue converts a non-nil internal value from one type to another.
func castValue(v any, from, to DataType) (any, error) {
	if v == nil {
		return nil, nil
	}
	if from.Kind == to.Kind && to.Kind != KindDecimal && to.Kind != KindFloat {
		return v, nil
	}
	switch to.Kind {
	case KindString:
		return valueString(v, from), nil
	case KindBinary:
		return []byte(v.(string)), nil
	case KindBoolean:
		switch x := v.(type) {
		case string:
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "t", "true", "y", "yes", "1":
				return true, nil
			case "f", "false", "n", "no", "0":
				return false, nil
			}
			return nil, fmt.Errorf("cannot cast %q to boolean", x)
		case int64:
			return x != 0, nil
		case float64:
			return x != 0, nil
		case *big.Rat:
			return x.Sign() != 0, nil
		}
	case KindDate:
		switch x := v.(type) {
		case string:
			return castStringToDate(x)
		case time.Time:
			return toRowValue(x, to)
		}
	case KindTimestamp:
		switch x := v.(type) {
		case string:
			return castStringToTimestamp(x)
		case time.Time:
			return x, nil
		case int64:
			return time.Unix(x, 0).UTC(), nil
		case float64:
			return time.UnixMicro(int64(x * 1e6)).UTC(), nil
		case *big.Rat:
			f, _ := x.Float64()
			return time.UnixMicro(int64(f * 1e6)).UTC(), nil
		}
	case KindFloat, KindDouble:
		var f float64
		switch x := v.(type) {
		case string:
			p, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil {
				return nil, fmt.Errorf("cannot cast %q to %s", x, to)
			}
			f = p
		case int64:
			f = float64(x)
		case float64:
			f = x
		case *big.Rat:
			f, _ = x.Float64()
		case bool:
			if x {
				f = 1
			}
		case time.Time:
			f = float64(x.UnixMicro()) / 1e6
		}
		if to.Kind == KindFloat {
			f = float64(float32(f))
		}
		return f, nil
	case KindDecimal:
		var r *big.Rat
		switch x := v.(type) {
		case string:
			p, ok := new(big.Rat).SetString(strings.TrimSpace(x))
			if !ok {
				return nil, fmt.Errorf("cannot cast %q to %s", x, to)
			}
			r = p
		case int64:
			r = new(big.Rat).SetInt64(x)
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("cannot cast %v to %s", x, to)
			}
			r, _ = new(big.Rat).SetString(strconv.FormatFloat(x, 'g', -1, 64))
		case *big.Rat:
			r = x
		case bool:
			r = new(big.Rat)
			if x {
				r.SetInt64(1)
			}
		default:
			return nil, fmt.Errorf("cannot cast %s to %s", from, to)
		}
		u, _ := ratToScale(r, to.Scale)
		if decimalDigits(u) > to.Precision {
			return nil, fmt.Errorf("%s overflows %s", r.FloatString(to.Scale), to)
		}
		return new(big.Rat).SetFrac(u, pow10(to.Scale)), nil
	default: // integral
		var n int64
		switch x := v.(type) {
		case string:
			s := strings.TrimSpace(x)
			p, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				r, ok := new(big.Rat).SetString(s)
				if !ok {
					return nil, fmt.Errorf("cannot cast %q to %s", x, to)
				}
				q := new(big.Int).Quo(r.Num(), r.Denom())
				if !q.IsInt64() {
					return nil, fmt.Errorf("%s overflows %s", s, to.Kind)
				}
				p = q.Int64()
			}
			n = p
		case int64:
			n = x
		case float64:
			t := math.Trunc(x)
			if math.IsNaN(x) || t < math.MinInt64 || t >= math.MaxInt64 {
				return nil, fmt.Errorf("%v overflows %s", x, to.Kind)
			}
			n = int64(t)
		case *big.Rat:
			q := new(big.Int).Quo(x.Num(), x.Denom())
			if !q.IsInt64() {
				return nil, fmt.Errorf("%s overflows %s", x.FloatString(0), to.Kind)
			}
			n = q.Int64()
		case bool:
			if x {
				n = 1
			}
		case time.Time:
			n = x.Unix()
		}
		if err := checkIntRange(n, to.Kind); err != nil {
			return nil, err
		}
		return n, nil
	}
	return nil, fmt.Errorf("cannot cast %s to %s", from, to)
}

// valueString renders an internal value as Spark casts it to string.
func valueString(v any, t DataType) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		if t.Kind == KindFloat {
			return javaDouble(x, 32)
		}
		return javaDouble(x, 64)
	case *big.Rat:
		sc := t.Scale
		if t.Kind != KindDecimal {
			sc = 18
		}
		return x.FloatString(sc)
	case bool:
		return strconv.FormatBool(x)
	case []byte:
		return string(x)
	case time.Time:
		if t.Kind == KindDate {
			return x.UTC().Format("2006-01-02")
		}
		return x.UTC().Format("2006-01-02 15:04:05.999999")
	}
	return fmt.Sprint(v)
}

// compareValues orders two non-nil internal values of one type.
func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case int64:
		return cmpOrdered(x, b.(int64))
	case float64:
		y := b.(float64)
		// Spark orders NaN above every number and equal to itself.
		switch {
		case math.IsNaN(x) && math.IsNaN(y):
			return 0
		case math.IsNaN(x):
			return 1
		case math.IsNaN(y):
			return -1
		}
		return cmpOrdered(x, y)
	case *big.Rat:
		return x.Cmp(b.(*big.Rat))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case []byte:
		return bytes.Compare(x, b.([]byte))
	case time.Time:
		return x.Compare(b.(time.Time))
	}
	return 0
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Expression is a Spark SQL expression compiled against a schema.
type Expression struct {
	sql  string
	c    cexpr
	cols []string // referenced column paths, for messages
	getc []func(Row) any
	colT []DataType
}

// CompileExpression parses sql and binds it to the columns of sc (nested
// struct fields as a.b, once the schema holds structs). Unknown columns or
// functions, non-deterministic functions and type errors are errors naming
// the expression and the position.
func CompileExpression(sql string, sc *Schema) (*Expression, error) {
	tree, err := parseSchemaTree(sc.SchemaString())
	if err != nil {
		return nil, err
	}
	return compileExpr(sql, tree.resolver())
}

func compileExpr(sql string, res columnResolver) (*Expression, error) {
	a, err := parseExpr(sql)
	if err != nil {
		return nil, err
	}
	e := &Expression{sql: sql}
	b := &binder{src: sql, res: res, e: e}
	c, err := b.bind(a)
	if err != nil {
		return nil, err
	}
	e.c = c
	return e, nil
}

// String returns the SQL text.
func (e *Expression) String() string { return e.sql }

// Type returns the result type (Kind 0 for a NULL literal).
func (e *Expression) Type() DataType { return e.c.t }

// Eval evaluates the expression on a row of the schema it was compiled
// against and returns a value of Row's Go types (nil for NULL).
func (e *Expression) Eval(row Row) (any, error) {
	v, err := e.c.eval(row)
	if err != nil {
		return nil, fmt.Errorf("evaluating %s: %w", e.sql, err)
	}
	return toRowValue(v, e.c.t)
}

// describeColumns renders the referenced columns of row, e.g. "amount = -3".
func (e *Expression) describeColumns(row Row) string {
	parts := make([]string, 0, len(e.cols))
	for i, n := range e.cols {
		parts = append(parts, n+" = "+formatValue(toInternal(e.getc[i](row)), e.colT[i]))
	}
	return strings.Join(parts, ", ")
}

// formatValue renders a value for an error message, SQL style.
func formatValue(v any, t DataType) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		return "'" + truncate(x, maxValueInMessage) + "'"
	case []byte:
		return fmt.Sprintf("X'%X'", x[:min(len(x), 32)])
	}
	return valueString(v, t)
}

type binder struct {
	src string
	res columnResolver
	e   *Expression
}

func (b *binder) errAt(pos int, format string, a ...any) error {
	return &ExprError{Expr: b.src, Pos: pos, Msg: fmt.Sprintf(format, a...)}
}

func constant(t DataType, v any) cexpr {
	return cexpr{t: t, eval: func(Row) (any, error) { return v, nil }}
}

// coerce wraps c so it yields values of type t.
func coerce(c cexpr, t DataType) cexpr {
	if c.t.Equal(t) || c.t.Kind == KindInvalid {
		return cexpr{t: t, eval: c.eval}
	}
	from := c.t
	return cexpr{t: t, eval: func(r Row) (any, error) {
		v, err := c.eval(r)
		if err != nil || v == nil {
			return nil, err
		}
		return castValue(v, from, t)
	}}
}

var nonDeterministic = map[string]bool{
	"current_date": true, "current_timestamp": true, "now": true, "rand": true, "randn": true,
	"random": true, "uuid": true, "current_timezone": true, "unix_timestamp": true,
	"monotonically_increasing_id": true, "input_file_name": true, "current_user": true,
	"localtimestamp": true, "spark_partition_id": true, "shuffle": true,
}

func (b *binder) bind(a *ast) (cexpr, error) {
	switch a.kind {
	case astLit:
		v := toInternal(a.lit)
		return constant(a.litType, v), nil
	case astCol:
		col, err := b.res(a.path)
		if err != nil {
			if len(a.path) == 1 && nonDeterministic[strings.ToLower(a.path[0])] {
				return cexpr{}, b.errAt(a.pos, "non-deterministic function %s is not allowed", a.path[0])
			}
			return cexpr{}, b.errAt(a.pos, "%v", err)
		}
		seen := false
		for _, n := range b.e.cols {
			seen = seen || n == col.name
		}
		if !seen {
			b.e.cols = append(b.e.cols, col.name)
			b.e.getc = append(b.e.getc, col.get)
			b.e.colT = append(b.e.colT, col.t)
		}
		get := col.get
		return cexpr{t: col.t, eval: func(r Row) (any, error) { return toInternal(get(r)), nil }}, nil
	case astUnary:
		x, err := b.bind(a.args[0])
		if err != nil {
			return cexpr{}, err
		}
		if a.op == "not" {
			x, err = b.boolean(a.args[0], x)
			if err != nil {
				return cexpr{}, err
			}
			return cexpr{t: DataType{Kind: KindBoolean}, eval: func(r Row) (any, error) {
				v, err := x.eval(r)
				if err != nil || v == nil {
					return nil, err
				}
				return !v.(bool), nil
			}}, nil
		}
		if x.t.Kind == KindString {
			x = coerce(x, DataType{Kind: KindDouble})
		}
		if !isNumeric(x.t.Kind) && x.t.Kind != KindInvalid {
			return cexpr{}, b.errAt(a.pos, "cannot negate a %s", x.t)
		}
		t := x.t
		return cexpr{t: t, eval: func(r Row) (any, error) {
			v, err := x.eval(r)
			if err != nil || v == nil {
				return nil, err
			}
			switch n := v.(type) {
			case int64:
				if n == math.MinInt64 {
					return nil, fmt.Errorf("-(%d) overflows %s", n, t.Kind)
				}
				return -n, checkIntRange(-n, t.Kind)
			case float64:
				return -n, nil
			case *big.Rat:
				return new(big.Rat).Neg(n), nil
			}
			return nil, nil
		}}, nil
	case astBinary:
		return b.binary(a)
	case astIsNull:
		x, err := b.bind(a.args[0])
		if err != nil {
			return cexpr{}, err
		}
		not := a.not
		return cexpr{t: DataType{Kind: KindBoolean}, eval: func(r Row) (any, error) {
			v, err := x.eval(r)
			if err != nil {
				return nil, err
			}
			return (v == nil) != not, nil
		}}, nil
	case astIn:
		return b.in(a)
	case astBetween:
		lo := &ast{kind: astBinary, op: ">=", pos: a.pos, args: []*ast{a.args[0], a.args[1]}}
		hi := &ast{kind: astBinary, op: "<=", pos: a.pos, args: []*ast{a.args[0], a.args[2]}}
		var e *ast = &ast{kind: astBinary, op: "and", pos: a.pos, args: []*ast{lo, hi}}
		if a.not {
			e = &ast{kind: astUnary, op: "not", pos: a.pos, args: []*ast{e}}
		}
		return b.bind(e)
	case astLike:
		return b.like(a)
	case astCast:
		x, err := b.bind(a.args[0])
		if err != nil {
			return cexpr{}, err
		}
		if !castAllowed(x.t.Kind, a.castType.Kind) {
			return cexpr{}, b.errAt(a.pos, "cannot cast %s to %s", x.t, a.castType)
		}
		return coerce(x, a.castType), nil
	case astCase:
		return b.caseExpr(a)
	case astFunc:
		return b.function(a)
	}
	return cexpr{}, b.errAt(a.pos, "unsupported expression")
}

func (b *binder) boolean(a *ast, c cexpr) (cexpr, error) {
	if c.t.Kind != KindBoolean && c.t.Kind != KindInvalid {
		return cexpr{}, b.errAt(a.pos, "expected a boolean, found a %s", c.t)
	}
	return c, nil
}

func (b *binder) binary(a *ast) (cexpr, error) {
	l, err := b.bind(a.args[0])
	if err != nil {
		return cexpr{}, err
	}
	r, err := b.bind(a.args[1])
	if err != nil {
		return cexpr{}, err
	}
	boolT := DataType{Kind: KindBoolean}
	switch a.op {
	case "and", "or":
		if l, err = b.boolean(a.args[0], l); err != nil {
			return cexpr{}, err
		}
		if r, err = b.boolean(a.args[1], r); err != nil {
			return cexpr{}, err
		}
		and := a.op == "and"
		return cexpr{t: boolT, eval: func(row Row) (any, error) {
			lv, err := l.eval(row)
			if err != nil {
				return nil, err
			}
			// FALSE AND x is FALSE, TRUE OR x is TRUE, whatever x is.
			if lv != nil && lv.(bool) != and {
				return lv, nil
			}
			rv, err := r.eval(row)
			if err != nil {
				return nil, err
			}
			if rv != nil && rv.(bool) != and {
				return rv, nil
			}
			if lv == nil || rv == nil {
				return nil, nil
			}
			return and, nil
		}}, nil
	case "=", "!=", "<", "<=", ">", ">=", "<=>":
		ct, ok := commonType(l.t, r.t, true)
		if !ok {
			return cexpr{}, b.errAt(a.pos, "cannot compare %s with %s", l.t, r.t)
		}
		l, r = coerce(l, ct), coerce(r, ct)
		op := a.op
		return cexpr{t: boolT, eval: func(row Row) (any, error) {
			lv, err := l.eval(row)
			if err != nil {
				return nil, err
			}
			rv, err := r.eval(row)
			if err != nil {
				return nil, err
			}
			if lv == nil || rv == nil {
				if op == "<=>" {
					return lv == nil && rv == nil, nil
				}
				return nil, nil
			}
			c := compareValues(lv, rv)
			switch op {
			case "=", "<=>":
				return c == 0, nil
			case "!=":
				return c != 0, nil
			case "<":
				return c < 0, nil
			case "<=":
				return c <= 0, nil
			case ">":
				return c > 0, nil
			}
			return c >= 0, nil
		}}, nil
	case "||":
		return b.concat([]cexpr{l, r}), nil
	}
	return b.arithmetic(a, l, r)
}

func (b *binder) arithmetic(a *ast, l, r cexpr) (cexpr, error) {
	op := a.op
	// date +/- days
	if (op == "+" || op == "-") && l.t.Kind == KindDate && isIntegral(r.t.Kind) {
		return cexpr{t: l.t, eval: func(row Row) (any, error) {
			lv, err := l.eval(row)
			if err != nil || lv == nil {
				return nil, err
			}
			rv, err := r.eval(row)
			if err != nil || rv == nil {
				return nil, err
			}
			n := int(rv.(int64))
			if op == "-" {
				n = -n
			}
			return lv.(time.Time).AddDate(0, 0, n), nil
		}}, nil
	}
	for _, x := range []*cexpr{&l, &r} {
		if x.t.Kind == KindString {
			*x = coerce(*x, DataType{Kind: KindDouble})
		}
		if !isNumeric(x.t.Kind) && x.t.Kind != KindInvalid {
			return cexpr{}, b.errAt(a.pos, "operator %s needs numbers, found a %s", op, x.t)
		}
	}
	ct, ok := commonType(l.t, r.t, false)
	if !ok {
		return cexpr{}, b.errAt(a.pos, "operator %s cannot combine %s and %s", op, l.t, r.t)
	}
	if ct.Kind == KindInvalid {
		ct = DataType{Kind: KindInteger}
	}
	rt := ct
	if ct.Kind == KindDecimal {
		dl, dr := asDecimalType(l.t), asDecimalType(r.t)
		switch op {
		case "*":
			rt = DataType{Kind: KindDecimal, Precision: min(38, dl.Precision+dr.Precision+1), Scale: min(38, dl.Scale+dr.Scale)}
		case "/":
			s := min(38, max(6, dl.Scale+dr.Precision+1))
			rt = DataType{Kind: KindDecimal, Precision: 38, Scale: s}
		case "+", "-":
			rt.Precision = min(38, ct.Precision+1)
		}
	} else if op == "/" {
		ct = DataType{Kind: KindDouble}
		rt = ct
	}
	l, r = coerce(l, ct), coerce(r, ct)
	return cexpr{t: rt, eval: func(row Row) (any, error) {
		lv, err := l.eval(row)
		if err != nil || lv == nil {
			return nil, err
		}
		rv, err := r.eval(row)
		if err != nil || rv == nil {
			return nil, err
		}
		switch x := lv.(type) {
		case int64:
			return intArith(op, x, rv.(int64), rt.Kind)
		case float64:
			y := rv.(float64)
			var f float64
			switch op {
			case "+":
				f = x + y
			case "-":
				f = x - y
			case "*":
				f = x * y
			case "/":
				if y == 0 {
					return nil, nil
				}
				f = x / y
			case "%":
				if y == 0 {
					return nil, nil
				}
				f = math.Mod(x, y)
			}
			if rt.Kind == KindFloat {
				f = float64(float32(f))
			}
			return f, nil
		case *big.Rat:
			y := rv.(*big.Rat)
			z := new(big.Rat)
			switch op {
			case "+":
				z.Add(x, y)
			case "-":
				z.Sub(x, y)
			case "*":
				z.Mul(x, y)
			case "/":
				if y.Sign() == 0 {
					return nil, nil
				}
				z.Quo(x, y)
			case "%":
				if y.Sign() == 0 {
					return nil, nil
				}
				q := new(big.Rat).Quo(x, y)
				tq := new(big.Int).Quo(q.Num(), q.Denom())
				z.Sub(x, new(big.Rat).Mul(y, new(big.Rat).SetInt(tq)))
			}
			u, _ := ratToScale(z, rt.Scale)
			if decimalDigits(u) > 38 {
				return nil, fmt.Errorf("decimal overflow in %s", op)
			}
			return new(big.Rat).SetFrac(u, pow10(rt.Scale)), nil
		}
		return nil, nil
	}}, nil
}

func intArith(op string, a, b int64, k Kind) (any, error) {
	var r int64
	switch op {
	case "+":
		r = a + b
		if (a > 0 && b > 0 && r < 0) || (a < 0 && b < 0 && r >= 0) {
			return nil, fmt.Errorf("%d + %d overflows %s", a, b, k)
		}
	case "-":
		r = a - b
		if (a >= 0 && b < 0 && r < 0) || (a < 0 && b > 0 && r >= 0) {
			return nil, fmt.Errorf("%d - %d overflows %s", a, b, k)
		}
	case "*":
		r = a * b
		if a != 0 && (r/a != b || (a == -1 && b == math.MinInt64)) {
			return nil, fmt.Errorf("%d * %d overflows %s", a, b, k)
		}
	case "%":
		if b == 0 {
			return nil, nil
		}
		if b == -1 {
			return int64(0), nil
		}
		r = a % b
	}
	if err := checkIntRange(r, k); err != nil {
		return nil, fmt.Errorf("%d %s %d: %w", a, op, b, err)
	}
	return r, nil
}

func (b *binder) in(a *ast) (cexpr, error) {
	items := make([]cexpr, len(a.args))
	ct := DataType{}
	for i, x := range a.args {
		c, err := b.bind(x)
		if err != nil {
			return cexpr{}, err
		}
		items[i] = c
		t, ok := commonType(ct, c.t, true)
		if !ok {
			return cexpr{}, b.errAt(x.pos, "IN list mixes %s and %s", ct, c.t)
		}
		ct = t
	}
	for i := range items {
		items[i] = coerce(items[i], ct)
	}
	not := a.not
	return cexpr{t: DataType{Kind: KindBoolean}, eval: func(row Row) (any, error) {
		v, err := items[0].eval(row)
		if err != nil || v == nil {
			return nil, err
		}
		sawNull := false
		for _, it := range items[1:] {
			w, err := it.eval(row)
			if err != nil {
				return nil, err
			}
			if w == nil {
				sawNull = true
				continue
			}
			if compareValues(v, w) == 0 {
				return !not, nil
			}
		}
		if sawNull {
			return nil, nil
		}
		return not, nil
	}}, nil
}

// likeRegexp translates a LIKE pattern (% _ and \ escapes) to a regexp.
func likeRegexp(p string) (*regexp.Regexp, error) {
	var sb strings.Builder
	sb.WriteString("(?s)^")
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		switch c := rs[i]; c {
		case '\\':
			if i+1 >= len(rs) {
				return nil, errors.New("LIKE pattern ends with an escape character")
			}
			i++
			sb.WriteString(regexp.QuoteMeta(string(rs[i])))
		case '%':
			sb.WriteString(".*")
		case '_':
			sb.WriteString(".")
		default:
			sb.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	sb.WriteString("$")
	return regexp.Compile(sb.String())
}

func (b *binder) like(a *ast) (cexpr, error) {
	x, err := b.bind(a.args[0])
	if err != nil {
		return cexpr{}, err
	}
	pat, err := b.bind(a.args[1])
	if err != nil {
		return cexpr{}, err
	}
	str := DataType{Kind: KindString}
	x, pat = coerce(x, str), coerce(pat, str)
	var fixed *regexp.Regexp
	if a.args[1].kind == astLit && a.args[1].lit != nil {
		if fixed, err = likeRegexp(a.args[1].lit.(string)); err != nil {
			return cexpr{}, b.errAt(a.args[1].pos, "%v", err)
		}
	}
	not := a.not
	return cexpr{t: DataType{Kind: KindBoolean}, eval: func(row Row) (any, error) {
		v, err := x.eval(row)
		if err != nil || v == nil {
			return nil, err
		}
		re := fixed
		if re == nil {
			p, err := pat.eval(row)
			if err != nil || p == nil {
				return nil, err
			}
			if re, err = likeRegexp(p.(string)); err != nil {
				return nil, err
			}
		}
		return re.MatchString(v.(string)) != not, nil
	}}, nil
}

func (b *binder) caseExpr(a *ast) (cexpr, error) {
	args := a.args
	var operand *cexpr
	if a.hasOperand {
		c, err := b.bind(args[0])
		if err != nil {
			return cexpr{}, err
		}
		operand = &c
		args = args[1:]
	}
	var elseC *cexpr
	if a.hasElse {
		c, err := b.bind(args[len(args)-1])
		if err != nil {
			return cexpr{}, err
		}
		elseC = &c
		args = args[:len(args)-1]
	}
	conds := make([]cexpr, 0, len(args)/2)
	vals := make([]cexpr, 0, len(args)/2)
	rt := DataType{}
	for i := 0; i < len(args); i += 2 {
		if operand != nil {
			eq := &ast{kind: astBinary, op: "=", pos: args[i].pos, args: []*ast{a.args[0], args[i]}}
			c, err := b.bind(eq)
			if err != nil {
				return cexpr{}, err
			}
			conds = append(conds, c)
		} else {
			c, err := b.bind(args[i])
			if err != nil {
				return cexpr{}, err
			}
			if c, err = b.boolean(args[i], c); err != nil {
				return cexpr{}, err
			}
			conds = append(conds, c)
		}
		v, err := b.bind(args[i+1])
		if err != nil {
			return cexpr{}, err
		}
		vals = append(vals, v)
		t, ok := commonType(rt, v.t, false)
		if !ok {
			return cexpr{}, b.errAt(args[i+1].pos, "CASE branches mix %s and %s", rt, v.t)
		}
		rt = t
	}
	if elseC != nil {
		t, ok := commonType(rt, elseC.t, false)
		if !ok {
			return cexpr{}, b.errAt(a.pos, "CASE branches mix %s and %s", rt, elseC.t)
		}
		rt = t
		e := coerce(*elseC, rt)
		elseC = &e
	}
	for i := range vals {
		vals[i] = coerce(vals[i], rt)
	}
	return cexpr{t: rt, eval: func(row Row) (any, error) {
		for i, c := range conds {
			v, err := c.eval(row)
			if err != nil {
				return nil, err
			}
			if v == true {
				return vals[i].eval(row)
			}
		}
		if elseC != nil {
			return elseC.eval(row)
		}
		return nil, nil
	}}, nil
}

func (b *binder) concat(args []cexpr) cexpr {
	for i := range args {
		args[i] = coerce(args[i], DataType{Kind: KindString})
	}
	return cexpr{t: DataType{Kind: KindString}, eval: func(row Row) (any, error) {
		var sb strings.Builder
		for _, a := range args {
			v, err := a.eval(row)
			if err != nil || v == nil {
				return nil, err
			}
			sb.WriteString(v.(string))
		}
		return sb.String(), nil
	}}
}

// fn1 builds a NULL-propagating function of evaluated arguments.
func fn1(t DataType, args []cexpr, f func(vs []any) (any, error)) cexpr {
	return cexpr{t: t, eval: func(row Row) (any, error) {
		vs := make([]any, len(args))
		for i, a := range args {
			v, err := a.eval(row)
			if err != nil || v == nil {
				return nil, err
			}
			vs[i] = v
		}
		return f(vs)
	}}
}

var truncUnits = map[string]string{
	"year": "year", "yyyy": "year", "yy": "year", "quarter": "quarter", "month": "month", "mm": "month",
	"mon": "month", "week": "week", "day": "day", "dd": "day", "hour": "hour", "minute": "minute",
	"second": "second", "millisecond": "millisecond", "microsecond": "microsecond",
}

func truncTime(t time.Time, unit string) (time.Time, bool) {
	t = t.UTC()
	switch unit {
	case "year":
		return time.Date(t.Year(), 1, 1, 0, 0, 0, 0, time.UTC), true
	case "quarter":
		return time.Date(t.Year(), ((t.Month()-1)/3)*3+1, 1, 0, 0, 0, 0, time.UTC), true
	case "month":
		return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC), true
	case "week": // Monday
		d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7)), true
	case "day":
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC), true
	case "hour":
		return t.Truncate(time.Hour), true
	case "minute":
		return t.Truncate(time.Minute), true
	case "second":
		return t.Truncate(time.Second), true
	case "millisecond":
		return t.Truncate(time.Millisecond), true
	case "microsecond":
		return t.Truncate(time.Microsecond), true
	}
	return t, false
}

// javaLayout converts a Spark datetime pattern (yyyy MM dd HH mm ss SSS,
// quoted text) to a Go layout.
func javaLayout(p string) (string, error) {
	var sb strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		if c == '\'' {
			j := strings.IndexByte(p[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated quote in datetime pattern %q", p)
			}
			sb.WriteString(p[i+1 : i+1+j])
			i += j + 2
			continue
		}
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			sb.WriteByte(c)
			i++
			continue
		}
		n := 1
		for i+n < len(p) && p[i+n] == c {
			n++
		}
		var l string
		switch {
		case c == 'y' && n == 2:
			l = "06"
		case c == 'y':
			l = "2006"
		case c == 'M' && n == 1:
			l = "1"
		case c == 'M' && n == 2:
			l = "01"
		case c == 'M' && n == 3:
			l = "Jan"
		case c == 'M':
			l = "January"
		case c == 'd' && n == 1:
			l = "2"
		case c == 'd':
			l = "02"
		case c == 'H':
			l = "15"
		case c == 'h' && n == 1:
			l = "3"
		case c == 'h':
			l = "03"
		case c == 'm' && n == 1:
			l = "4"
		case c == 'm':
			l = "04"
		case c == 's' && n == 1:
			l = "5"
		case c == 's':
			l = "05"
		case c == 'S':
			l = strings.Repeat("0", n)
		case c == 'a':
			l = "PM"
		case c == 'E' && n <= 3:
			l = "Mon"
		case c == 'E':
			l = "Monday"
		default:
			return "", fmt.Errorf("unsupported letter %q in datetime pattern %q", c, p)
		}
		sb.WriteString(l)
		i += n
	}
	return sb.String(), nil
}

func (b *binder) function(a *ast) (cexpr, error) {
	name := a.name
	if nonDeterministic[name] {
		return cexpr{}, b.errAt(a.pos, "non-deterministic function %s is not allowed", name)
	}
	args := make([]cexpr, len(a.args))
	for i, x := range a.args {
		c, err := b.bind(x)
		if err != nil {
			return cexpr{}, err
		}
		args[i] = c
	}
	nargs := func(lo, hi int) error {
		if len(args) < lo || len(args) > hi {
			if lo == hi {
				return b.errAt(a.pos, "function %s takes %d argument(s), got %d", name, lo, len(args))
			}
			return b.errAt(a.pos, "function %s takes %d to %d arguments, got %d", name, lo, hi, len(args))
		}
		return nil
	}
	str := DataType{Kind: KindString}
	intT := DataType{Kind: KindInteger}
	ts := DataType{Kind: KindTimestamp}
	date := DataType{Kind: KindDate}
	litString := func(i int) (string, bool) {
		if a.args[i].kind == astLit {
			s, ok := a.args[i].lit.(string)
			return s, ok
		}
		return "", false
	}
	timeArg := func(i int, t DataType) (cexpr, error) {
		k := args[i].t.Kind
		if k != KindDate && k != KindTimestamp && k != KindString && k != KindInvalid {
			return cexpr{}, b.errAt(a.args[i].pos, "function %s needs a date or timestamp, found a %s", name, args[i].t)
		}
		if k == KindDate && t.Kind == KindTimestamp {
			return coerce(args[i], ts), nil
		}
		if k == KindString || k == KindInvalid {
			return coerce(args[i], t), nil
		}
		return args[i], nil
	}
	switch name {
	case "length", "char_length", "character_length":
		if err := nargs(1, 1); err != nil {
			return cexpr{}, err
		}
		if args[0].t.Kind != KindBinary {
			args[0] = coerce(args[0], str)
		}
		return fn1(intT, args, func(vs []any) (any, error) {
			if bs, ok := vs[0].([]byte); ok {
				return int64(len(bs)), nil
			}
			return int64(utf8.RuneCountInString(vs[0].(string))), nil
		}), nil
	case "upper", "lower", "trim", "ltrim", "rtrim":
		if err := nargs(1, 1); err != nil {
			return cexpr{}, err
		}
		args[0] = coerce(args[0], str)
		return fn1(str, args, func(vs []any) (any, error) {
			s := vs[0].(string)
			switch name {
			case "upper":
				return strings.ToUpper(s), nil
			case "lower":
				return strings.ToLower(s), nil
			case "ltrim":
				return strings.TrimLeft(s, " "), nil
			case "rtrim":
				return strings.TrimRight(s, " "), nil
			}
			return strings.Trim(s, " "), nil
		}), nil
	case "substring", "substr":
		if err := nargs(2, 3); err != nil {
			return cexpr{}, err
		}
		args[0] = coerce(args[0], str)
		for i := 1; i < len(args); i++ {
			if !isIntegral(args[i].t.Kind) && args[i].t.Kind != KindInvalid {
				return cexpr{}, b.errAt(a.args[i].pos, "substring position and length must be integers, found a %s", args[i].t)
			}
			args[i] = coerce(args[i], intT)
		}
		return fn1(str, args, func(vs []any) (any, error) {
			rs := []rune(vs[0].(string))
			pos := vs[1].(int64)
			var start int64
			switch {
			case pos > 0:
				start = pos - 1
			case pos < 0:
				start = int64(len(rs)) + pos
			}
			end := int64(math.MaxInt64)
			if len(vs) == 3 {
				end = start + vs[2].(int64)
			}
			start = max(start, 0)
			end = min(end, int64(len(rs)))
			if start >= end {
				return "", nil
			}
			return string(rs[start:end]), nil
		}), nil
	case "concat":
		if len(args) == 0 {
			return constant(str, ""), nil
		}
		return b.concat(args), nil
	case "coalesce":
		if len(args) == 0 {
			return cexpr{}, b.errAt(a.pos, "coalesce needs at least one argument")
		}
		rt := DataType{}
		for i, c := range args {
			t, ok := commonType(rt, c.t, false)
			if !ok {
				return cexpr{}, b.errAt(a.args[i].pos, "coalesce mixes %s and %s", rt, c.t)
			}
			rt = t
		}
		for i := range args {
			args[i] = coerce(args[i], rt)
		}
		return cexpr{t: rt, eval: func(row Row) (any, error) {
			for _, c := range args {
				v, err := c.eval(row)
				if err != nil || v != nil {
					return v, err
				}
			}
			return nil, nil
		}}, nil
	case "abs":
		if err := nargs(1, 1); err != nil {
			return cexpr{}, err
		}
		if !isNumeric(args[0].t.Kind) {
			return cexpr{}, b.errAt(a.pos, "abs needs a number, found a %s", args[0].t)
		}
		k := args[0].t.Kind
		return fn1(args[0].t, args, func(vs []any) (any, error) {
			switch x := vs[0].(type) {
			case int64:
				if x < 0 {
					return intArith("-", 0, x, k)
				}
				return x, nil
			case float64:
				return math.Abs(x), nil
			case *big.Rat:
				return new(big.Rat).Abs(x), nil
			}
			return nil, nil
		}), nil
	case "year", "month", "day", "dayofmonth", "hour", "minute", "second", "quarter", "dayofweek", "dayofyear":
		if err := nargs(1, 1); err != nil {
			return cexpr{}, err
		}
		want := date
		if name == "hour" || name == "minute" || name == "second" {
			want = ts
		}
		x, err := timeArg(0, want)
		if err != nil {
			return cexpr{}, err
		}
		return fn1(intT, []cexpr{x}, func(vs []any) (any, error) {
			t := vs[0].(time.Time).UTC()
			switch name {
			case "year":
				return int64(t.Year()), nil
			case "month":
				return int64(t.Month()), nil
			case "quarter":
				return int64((t.Month()-1)/3 + 1), nil
			case "hour":
				return int64(t.Hour()), nil
			case "minute":
				return int64(t.Minute()), nil
			case "second":
				return int64(t.Second()), nil
			case "dayofweek":
				return int64(t.Weekday()) + 1, nil
			case "dayofyear":
				return int64(t.YearDay()), nil
			}
			return int64(t.Day()), nil
		}), nil
	case "to_date", "to_timestamp":
		if err := nargs(1, 2); err != nil {
			return cexpr{}, err
		}
		rt := date
		if name == "to_timestamp" {
			rt = ts
		}
		if len(args) == 1 {
			x, err := timeArg(0, rt)
			if err != nil {
				return cexpr{}, err
			}
			return coerce(x, rt), nil
		}
		f, ok := litString(1)
		if !ok {
			return cexpr{}, b.errAt(a.args[1].pos, "%s needs a literal format", name)
		}
		layout, err := javaLayout(f)
		if err != nil {
			return cexpr{}, b.errAt(a.args[1].pos, "%v", err)
		}
		x := coerce(args[0], str)
		return fn1(rt, []cexpr{x}, func(vs []any) (any, error) {
			t, err := time.ParseInLocation(layout, vs[0].(string), time.UTC)
			if err != nil {
				return nil, fmt.Errorf("%s: %q does not match %q", name, vs[0], f)
			}
			return toRowValue(t, rt)
		}), nil
	case "date_format":
		if err := nargs(2, 2); err != nil {
			return cexpr{}, err
		}
		x, err := timeArg(0, ts)
		if err != nil {
			return cexpr{}, err
		}
		f, ok := litString(1)
		if !ok {
			return cexpr{}, b.errAt(a.args[1].pos, "date_format needs a literal format")
		}
		layout, err := javaLayout(f)
		if err != nil {
			return cexpr{}, b.errAt(a.args[1].pos, "%v", err)
		}
		return fn1(str, []cexpr{x}, func(vs []any) (any, error) {
			return vs[0].(time.Time).UTC().Format(layout), nil
		}), nil
	case "date_trunc", "trunc":
		if err := nargs(2, 2); err != nil {
			return cexpr{}, err
		}
		ui, ti, rt := 0, 1, ts
		if name == "trunc" {
			ui, ti, rt = 1, 0, date
		}
		x, err := timeArg(ti, rt)
		if err != nil {
			return cexpr{}, err
		}
		u, ok := litString(ui)
		if !ok {
			return cexpr{}, b.errAt(a.args[ui].pos, "%s needs a literal unit", name)
		}
		unit, ok := truncUnits[strings.ToLower(u)]
		if !ok || (name == "trunc" && !map[string]bool{"year": true, "quarter": true, "month": true, "week": true}[unit]) {
			return cexpr{}, b.errAt(a.args[ui].pos, "unsupported %s unit %q", name, u)
		}
		return fn1(rt, []cexpr{x}, func(vs []any) (any, error) {
			t, _ := truncTime(vs[0].(time.Time), unit)
			return t, nil
		}), nil
	}
	return cexpr{}, b.errAt(a.pos, "unknown or unsupported function %s", name)
}
