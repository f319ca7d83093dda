package openapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Doc is a parsed OpenAPI document with a validator for the JSON Schema
// subset chatr's description uses. It is deliberately small: a keyword it does
// not implement is refused by Parse rather than silently ignored, so a test
// that validates against the description can never pass by skipping a rule.
type Doc struct {
	root map[string]any

	mu       sync.Mutex
	patterns map[string]*regexp.Regexp
}

// Operation is one method on one path, with the response codes it declares
// ("200", "429", "default", ...).
type Operation struct {
	Method, Path string
	Statuses     []string
}

// methods are the operation keys of an OpenAPI path item.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Load parses the embedded description.
func Load() (*Doc, error) { return Parse(document) }

// Parse reads an OpenAPI 3.0 document and checks what the validator relies
// on: every $ref resolves, every schema uses only implemented keywords and
// formats, and every discriminator mapping matches its oneOf.
func Parse(b []byte) (*Doc, error) {
	var root map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("while decoding the OpenAPI document: %w", err)
	}
	d := &Doc{root: root, patterns: map[string]*regexp.Regexp{}}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

// Operations lists every operation, sorted by path then method.
func (d *Doc) Operations() []Operation {
	var ops []Operation
	paths, _ := d.root["paths"].(map[string]any)
	for p, item := range paths {
		item, _ := item.(map[string]any)
		for _, m := range methods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			o := Operation{Method: strings.ToUpper(m), Path: p}
			resps, _ := op["responses"].(map[string]any)
			for code := range resps {
				o.Statuses = append(o.Statuses, code)
			}
			sort.Strings(o.Statuses)
			ops = append(ops, o)
		}
	}
	sort.Slice(ops, func(i, j int) bool {
		if ops[i].Path != ops[j].Path {
			return ops[i].Path < ops[j].Path
		}
		return ops[i].Method < ops[j].Method
	})
	return ops
}

// Operation returns the operation object of method on path.
func (d *Doc) operation(method, path string) (map[string]any, bool) {
	paths, _ := d.root["paths"].(map[string]any)
	item, _ := paths[path].(map[string]any)
	op, ok := item[strings.ToLower(method)].(map[string]any)
	return op, ok
}

// Response returns the response object that method on path declares for
// code ("200", "default"), with its $ref resolved.
func (d *Doc) Response(method, path, code string) (map[string]any, bool) {
	op, ok := d.operation(method, path)
	if !ok {
		return nil, false
	}
	resps, _ := op["responses"].(map[string]any)
	r, ok := resps[code]
	if !ok {
		return nil, false
	}
	obj, err := d.deref(r)
	return obj, err == nil
}

// RequestSchema returns the JSON schema of method on path's request body.
func (d *Doc) RequestSchema(method, path string) (any, bool) {
	op, ok := d.operation(method, path)
	if !ok {
		return nil, false
	}
	rb, err := d.deref(op["requestBody"])
	if err != nil {
		return nil, false
	}
	content, _ := rb["content"].(map[string]any)
	media, _ := content["application/json"].(map[string]any)
	s, ok := media["schema"]
	return s, ok
}

// MediaSchema returns the schema of the mediaType content of method on
// path's response code (for the stream's events, which ValidateResponse
// does not read).
func (d *Doc) MediaSchema(method, path, code, mediaType string) (any, bool) {
	r, ok := d.Response(method, path, code)
	if !ok {
		return nil, false
	}
	content, _ := r["content"].(map[string]any)
	media, _ := content[mediaType].(map[string]any)
	s, ok := media["schema"]
	return s, ok
}

// Declares reports whether method on path lists status code explicitly
// (not through "default").
func (d *Doc) Declares(method, path string, status int) bool {
	_, ok := d.Response(method, path, strconv.Itoa(status))
	return ok
}

// ValidateResponse checks one real JSON response against the description:
// the status must be declared for the operation (statuses of 500 and more
// may fall to "default"), the Content-Type must be one the response
// declares, its required headers must be present and valid, and the body
// must match the schema.
func (d *Doc) ValidateResponse(method, path string, status int, header http.Header, body []byte) error {
	if _, ok := d.operation(method, path); !ok {
		return fmt.Errorf("%s %s is not in the description", method, path)
	}
	resp, ok := d.Response(method, path, strconv.Itoa(status))
	if !ok && status >= 500 {
		resp, ok = d.Response(method, path, "default")
	}
	if !ok {
		return fmt.Errorf("%s %s answered %d, which the description does not list", method, path, status)
	}
	var errs []string
	if hs, ok := resp["headers"].(map[string]any); ok {
		for name, h := range hs {
			hobj, err := d.deref(h)
			if err != nil {
				return err
			}
			val := header.Get(name)
			if val == "" {
				if req, _ := hobj["required"].(bool); req {
					errs = append(errs, fmt.Sprintf("header %s: required but missing", name))
				}
				continue
			}
			if err := d.validateHeader(name, hobj["schema"], val); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	content, _ := resp["content"].(map[string]any)
	if len(content) == 0 {
		if len(bytes.TrimSpace(body)) != 0 {
			errs = append(errs, "body: the description declares no content, but the response has a body")
		}
		return joinErrs(method, path, status, errs)
	}
	mt, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil {
		errs = append(errs, fmt.Sprintf("Content-Type %q: %v", header.Get("Content-Type"), err))
		return joinErrs(method, path, status, errs)
	}
	media, ok := content[mt].(map[string]any)
	if !ok {
		errs = append(errs, fmt.Sprintf("Content-Type %s is not declared (declared: %s)", mt, strings.Join(keys(content), ", ")))
		return joinErrs(method, path, status, errs)
	}
	if mt == "application/json" {
		if err := d.ValidateJSON(media["schema"], body); err != nil {
			errs = append(errs, err.Error())
		}
	}
	return joinErrs(method, path, status, errs)
}

func joinErrs(method, path string, status int, errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%s %s %d disagrees with the description:\n  %s", method, path, status, strings.Join(errs, "\n  "))
}

// validateHeader checks a header value against a scalar schema.
func (d *Doc) validateHeader(name string, schema any, val string) error {
	s, err := d.deref(schema)
	if err != nil {
		return err
	}
	var v any = val
	switch s["type"] {
	case "integer", "number":
		v = json.Number(strings.TrimSpace(val))
	case "boolean":
		b, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("header %s: %q is not a boolean", name, val)
		}
		v = b
	}
	var errs []string
	d.validate("header "+name, s, v, &errs)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// SchemaRef names a component schema, for ValidateJSON.
func SchemaRef(name string) any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// ValidateJSON decodes body (exactly one JSON value) and validates it
// against schema.
func (d *Doc) ValidateJSON(schema any, body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("body is not JSON: %v", err)
	}
	// More alone misses a stray closing bracket after the value ("{}]"):
	// only io.EOF from the next token means the body held one value.
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("body holds more than one JSON value")
	}
	return d.Validate(schema, v)
}

// Validate checks a decoded JSON value (numbers as json.Number) against
// schema and lists every disagreement, each with its JSON path.
func (d *Doc) Validate(schema any, v any) error {
	var errs []string
	d.validate("$", schema, v, &errs)
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "\n  "))
	}
	return nil
}

func (d *Doc) validate(at string, schema any, v any, errs *[]string) {
	s, err := d.deref(schema)
	if err != nil {
		*errs = append(*errs, fmt.Sprintf("%s: %v", at, err))
		return
	}
	if v == nil {
		if n, _ := s["nullable"].(bool); n {
			return
		}
		if _, typed := s["type"]; typed {
			*errs = append(*errs, fmt.Sprintf("%s: null, want %s", at, s["type"]))
			return
		}
	}
	if t, ok := s["type"].(string); ok && !hasType(t, v) {
		*errs = append(*errs, fmt.Sprintf("%s: %s, want %s", at, describe(v), t))
		return
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if jsonEqual(e, v) {
				found = true
				break
			}
		}
		if !found {
			*errs = append(*errs, fmt.Sprintf("%s: %s is not one of %s", at, canon(v), canon(enum)))
		}
	}
	switch x := v.(type) {
	case string:
		d.validateString(at, s, x, errs)
	case json.Number:
		f, _ := x.Float64()
		if min, ok := s["minimum"].(json.Number); ok {
			if m, _ := min.Float64(); f < m {
				*errs = append(*errs, fmt.Sprintf("%s: %s is below the minimum %s", at, x, min))
			}
		}
		if max, ok := s["maximum"].(json.Number); ok {
			if m, _ := max.Float64(); f > m {
				*errs = append(*errs, fmt.Sprintf("%s: %s is above the maximum %s", at, x, max))
			}
		}
	case []any:
		if n, ok := intKeyword(s, "minItems"); ok && len(x) < n {
			*errs = append(*errs, fmt.Sprintf("%s: %d items, want at least %d", at, len(x), n))
		}
		if n, ok := intKeyword(s, "maxItems"); ok && len(x) > n {
			*errs = append(*errs, fmt.Sprintf("%s: %d items, want at most %d", at, len(x), n))
		}
		if items, ok := s["items"]; ok {
			for i, e := range x {
				d.validate(fmt.Sprintf("%s[%d]", at, i), items, e, errs)
			}
		}
	case map[string]any:
		d.validateObject(at, s, x, errs)
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			d.validate(at, sub, v, errs)
		}
	}
	if any_, ok := s["anyOf"].([]any); ok {
		matched := false
		for _, sub := range any_ {
			var sub_errs []string
			d.validate(at, sub, v, &sub_errs)
			if len(sub_errs) == 0 {
				matched = true
				break
			}
		}
		if !matched {
			*errs = append(*errs, fmt.Sprintf("%s: matches none of anyOf", at))
		}
	}
	if one, ok := s["oneOf"].([]any); ok {
		var matched []int
		var why []string
		for i, sub := range one {
			var sub_errs []string
			d.validate(at, sub, v, &sub_errs)
			if len(sub_errs) == 0 {
				matched = append(matched, i)
			} else {
				why = append(why, fmt.Sprintf("[%s: %s]", refName(sub, i), strings.Join(sub_errs, "; ")))
			}
		}
		switch len(matched) {
		case 1:
		case 0:
			*errs = append(*errs, fmt.Sprintf("%s: matches none of oneOf %s", at, strings.Join(why, " ")))
		default:
			*errs = append(*errs, fmt.Sprintf("%s: matches %d branches of oneOf, want exactly one", at, len(matched)))
		}
	}
}

func (d *Doc) validateString(at string, s map[string]any, x string, errs *[]string) {
	n := utf8.RuneCountInString(x)
	if m, ok := intKeyword(s, "minLength"); ok && n < m {
		*errs = append(*errs, fmt.Sprintf("%s: %d characters, want at least %d", at, n, m))
	}
	if m, ok := intKeyword(s, "maxLength"); ok && n > m {
		*errs = append(*errs, fmt.Sprintf("%s: %d characters, want at most %d", at, n, m))
	}
	if p, ok := s["pattern"].(string); ok {
		re, err := d.pattern(p)
		if err != nil {
			*errs = append(*errs, fmt.Sprintf("%s: %v", at, err))
		} else if !re.MatchString(x) {
			*errs = append(*errs, fmt.Sprintf("%s: %q does not match %s", at, x, p))
		}
	}
	if f, ok := s["format"].(string); ok {
		if err := checkFormat(f, x); err != nil {
			*errs = append(*errs, fmt.Sprintf("%s: %q: %v", at, x, err))
		}
	}
}

func (d *Doc) validateObject(at string, s map[string]any, x map[string]any, errs *[]string) {
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			name, _ := r.(string)
			if _, present := x[name]; !present {
				*errs = append(*errs, fmt.Sprintf("%s: required property %q is missing", at, name))
			}
		}
	}
	props, _ := s["properties"].(map[string]any)
	for _, k := range keys(x) {
		child := at + "." + k
		if p, ok := props[k]; ok {
			d.validate(child, p, x[k], errs)
			continue
		}
		switch ap := s["additionalProperties"].(type) {
		case bool:
			if !ap {
				*errs = append(*errs, fmt.Sprintf("%s: property not in the description", child))
			}
		case map[string]any:
			d.validate(child, ap, x[k], errs)
		}
	}
}

// uuidRE is the textual form of a UUID (any version).
var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// formats are the string formats the validator checks; Parse refuses others.
var formats = map[string]func(string) error{
	"date-time": func(s string) error {
		_, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return errors.New("not an RFC 3339 date-time")
		}
		return nil
	},
	"uuid": func(s string) error {
		if !uuidRE.MatchString(s) {
			return errors.New("not a UUID")
		}
		return nil
	},
}

func checkFormat(f, s string) error {
	check, ok := formats[f]
	if !ok {
		return fmt.Errorf("format %q is not implemented", f)
	}
	return check(s)
}

func (d *Doc) pattern(p string) (*regexp.Regexp, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if re, ok := d.patterns[p]; ok {
		return re, nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %v", p, err)
	}
	d.patterns[p] = re
	return re, nil
}

func hasType(t string, v any) bool {
	switch t {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := strconv.ParseInt(string(n), 10, 64)
		return err == nil
	}
	return false
}

func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return fmt.Sprintf("the string %q", x)
	case json.Number:
		return "the number " + string(x)
	case bool:
		return fmt.Sprintf("the boolean %v", x)
	}
	return fmt.Sprintf("%T", v)
}

func intKeyword(s map[string]any, k string) (int, bool) {
	n, ok := s[k].(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(n))
	return i, err == nil
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// jsonEqual compares two decoded JSON values; numbers compare by value.
func jsonEqual(a, b any) bool {
	an, aok := a.(json.Number)
	bn, bok := b.(json.Number)
	if aok && bok {
		af, err1 := an.Float64()
		bf, err2 := bn.Float64()
		return err1 == nil && err2 == nil && af == bf
	}
	return canon(a) == canon(b)
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func refName(schema any, i int) string {
	if m, ok := schema.(map[string]any); ok {
		if r, ok := m["$ref"].(string); ok {
			return r[strings.LastIndex(r, "/")+1:]
		}
	}
	return "#" + strconv.Itoa(i)
}

// deref follows $ref (local references only, as OpenAPI 3.0 allows a
// document to be self-contained) until it reaches an object. In OpenAPI 3.0
// the siblings of $ref are ignored, so they are here too.
func (d *Doc) deref(node any) (map[string]any, error) {
	for range 32 {
		m, ok := node.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("expected an object, found %s", describe(node))
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return m, nil
		}
		target, err := d.resolve(ref)
		if err != nil {
			return nil, err
		}
		node = target
	}
	return nil, errors.New("$ref chain too long (a cycle?)")
}

// resolve follows a local JSON pointer ("#/components/schemas/Message").
func (d *Doc) resolve(ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("$ref %q: only local references are supported", ref)
	}
	var cur any = d.root
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
		if cur, ok = m[tok]; !ok {
			return nil, fmt.Errorf("$ref %q does not resolve", ref)
		}
	}
	return cur, nil
}
