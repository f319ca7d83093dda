package openapi

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// schemaKeywords are the schema keywords the validator implements, or that
// only annotate (description, example, ...). Parse refuses any other, so
// adding a rule to the description that the validator would skip fails the
// tests instead of weakening them.
var schemaKeywords = map[string]bool{
	"$ref": true, "type": true, "nullable": true, "required": true, "properties": true,
	"additionalProperties": true, "enum": true, "items": true, "oneOf": true, "allOf": true,
	"anyOf": true, "format": true, "pattern": true, "minLength": true, "maxLength": true,
	"minimum": true, "maximum": true, "minItems": true, "maxItems": true, "discriminator": true,
	// annotations
	"description": true, "example": true, "default": true, "title": true,
}

var schemaTypes = map[string]bool{"object": true, "array": true, "string": true, "integer": true, "number": true, "boolean": true}

// check verifies the document as a whole: refs, schema keywords, discriminators,
// unique operation ids and known security schemes.
func (d *Doc) check() error {
	var errs []string
	if v, _ := d.root["openapi"].(string); !strings.HasPrefix(v, "3.0.") {
		errs = append(errs, fmt.Sprintf("openapi: %q, want 3.0.x (nullable, not type lists)", v))
	}
	d.checkRefs("#", d.root, &errs)
	comps, _ := d.root["components"].(map[string]any)
	schemas, _ := comps["schemas"].(map[string]any)
	for _, name := range keys(schemas) {
		d.checkSchema("#/components/schemas/"+name, schemas[name], &errs)
	}
	d.checkSchemaHolders("#/paths", d.root["paths"], &errs)
	for _, k := range []string{"responses", "headers", "parameters", "requestBodies"} {
		d.checkSchemaHolders("#/components/"+k, comps[k], &errs)
	}
	schemes, _ := comps["securitySchemes"].(map[string]any)
	ids := map[string]string{}
	for _, op := range d.Operations() {
		o, _ := d.operation(op.Method, op.Path)
		where := op.Method + " " + op.Path
		id, _ := o["operationId"].(string)
		if id == "" {
			errs = append(errs, where+": no operationId")
		} else if prev, dup := ids[id]; dup {
			errs = append(errs, fmt.Sprintf("%s: operationId %q already used by %s", where, id, prev))
		}
		ids[id] = where
		if len(op.Statuses) == 0 {
			errs = append(errs, where+": no responses")
		}
		if sec, ok := o["security"].([]any); ok {
			for _, req := range sec {
				m, _ := req.(map[string]any)
				for name := range m {
					if _, ok := schemes[name]; !ok {
						errs = append(errs, fmt.Sprintf("%s: security scheme %q is not defined", where, name))
					}
				}
			}
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("the OpenAPI document is not usable:\n  %s", strings.Join(errs, "\n  "))
	}
	return nil
}

// checkRefs makes sure every $ref anywhere in the document resolves.
func (d *Doc) checkRefs(at string, node any, errs *[]string) {
	switch x := node.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok {
			if _, err := d.resolve(ref); err != nil {
				*errs = append(*errs, at+": "+err.Error())
			}
		}
		for _, k := range keys(x) {
			d.checkRefs(at+"/"+k, x[k], errs)
		}
	case []any:
		for i, e := range x {
			d.checkRefs(fmt.Sprintf("%s/%d", at, i), e, errs)
		}
	}
}

// checkSchemaHolders finds the inline schemas of parameters, media types and
// headers (any "schema" member) below node and checks them.
func (d *Doc) checkSchemaHolders(at string, node any, errs *[]string) {
	switch x := node.(type) {
	case map[string]any:
		for _, k := range keys(x) {
			if k == "schema" {
				d.checkSchema(at+"/schema", x[k], errs)
				continue
			}
			d.checkSchemaHolders(at+"/"+k, x[k], errs)
		}
	case []any:
		for i, e := range x {
			d.checkSchemaHolders(fmt.Sprintf("%s/%d", at, i), e, errs)
		}
	}
}

func (d *Doc) checkSchema(at string, node any, errs *[]string) {
	s, ok := node.(map[string]any)
	if !ok {
		*errs = append(*errs, at+": a schema must be an object")
		return
	}
	for _, k := range keys(s) {
		if !schemaKeywords[k] {
			*errs = append(*errs, fmt.Sprintf("%s: keyword %q is not implemented by the validator", at, k))
		}
	}
	if _, isRef := s["$ref"]; isRef {
		if len(s) > 1 {
			*errs = append(*errs, at+": $ref has siblings, which OpenAPI 3.0 ignores")
		}
		return
	}
	if t, ok := s["type"]; ok {
		if ts, _ := t.(string); !schemaTypes[ts] {
			*errs = append(*errs, fmt.Sprintf("%s: type %v is not one of OpenAPI 3.0's types", at, t))
		}
	}
	if f, ok := s["format"].(string); ok {
		if _, known := formats[f]; !known {
			*errs = append(*errs, fmt.Sprintf("%s: format %q is not implemented by the validator", at, f))
		}
	}
	if p, ok := s["pattern"].(string); ok {
		if _, err := regexp.Compile(p); err != nil {
			*errs = append(*errs, fmt.Sprintf("%s: pattern: %v", at, err))
		}
	}
	if props, ok := s["properties"].(map[string]any); ok {
		for _, k := range keys(props) {
			d.checkSchema(at+"/properties/"+k, props[k], errs)
		}
	}
	if req, ok := s["required"].([]any); ok {
		props, _ := s["properties"].(map[string]any)
		for _, r := range req {
			if name, _ := r.(string); props[name] == nil {
				*errs = append(*errs, fmt.Sprintf("%s: required %v has no property schema", at, r))
			}
		}
	}
	if items, ok := s["items"]; ok {
		d.checkSchema(at+"/items", items, errs)
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		d.checkSchema(at+"/additionalProperties", ap, errs)
	}
	for _, k := range []string{"oneOf", "allOf", "anyOf"} {
		if list, ok := s[k].([]any); ok {
			for i, sub := range list {
				d.checkSchema(fmt.Sprintf("%s/%s/%d", at, k, i), sub, errs)
			}
		}
	}
	if disc, ok := s["discriminator"].(map[string]any); ok {
		d.checkDiscriminator(at, s, disc, errs)
	}
}

// checkDiscriminator makes sure a discriminator says the same as the oneOf
// it labels: every mapping target is a branch, and the branch's property
// admits exactly the mapped value. Code generators trust the mapping; the
// validator trusts the branches; they must agree.
func (d *Doc) checkDiscriminator(at string, s, disc map[string]any, errs *[]string) {
	prop, _ := disc["propertyName"].(string)
	branches := map[string]bool{}
	one, _ := s["oneOf"].([]any)
	for _, b := range one {
		if m, ok := b.(map[string]any); ok {
			if r, ok := m["$ref"].(string); ok {
				branches[r] = true
			}
		}
	}
	mapping, _ := disc["mapping"].(map[string]any)
	if len(mapping) != len(branches) {
		*errs = append(*errs, fmt.Sprintf("%s: discriminator maps %d values for %d oneOf branches", at, len(mapping), len(branches)))
	}
	for _, val := range keys(mapping) {
		ref, _ := mapping[val].(string)
		if !branches[ref] {
			*errs = append(*errs, fmt.Sprintf("%s: discriminator value %q maps to %s, not a oneOf branch", at, val, ref))
			continue
		}
		target, err := d.deref(map[string]any{"$ref": ref})
		if err != nil {
			continue // reported by checkRefs
		}
		props, _ := target["properties"].(map[string]any)
		p, _ := d.deref(props[prop])
		enum, _ := p["enum"].([]any)
		if len(enum) != 1 || enum[0] != val {
			*errs = append(*errs, fmt.Sprintf("%s: %s.%s must be the enum [%q] for the discriminator", at, ref, prop, val))
		}
	}
}
