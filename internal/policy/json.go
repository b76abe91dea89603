package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// A policy document is decoded into a small tree first, so that the
// compiler can refuse what encoding/json would silently accept: duplicate
// object keys, trailing data, numbers where strings belong.

type nodeKind uint8

const (
	nodeObject nodeKind = iota + 1
	nodeArray
	nodeString
	nodeNumber
	nodeBool
	nodeNull
)

// maxDepth bounds the nesting of a document. A policy needs five levels
// (document, Statement list, statement, Condition, operator, values);
// anything much deeper is not a policy and must not cost stack.
const maxDepth = 16

type node struct {
	kind   nodeKind
	str    string   // nodeString: the text; nodeNumber: the literal as written
	b      bool     // nodeBool
	keys   []string // nodeObject: member names in document order
	values []*node  // nodeObject: member values; nodeArray: elements
}

func (n *node) kindName() string {
	switch n.kind {
	case nodeObject:
		return "an object"
	case nodeArray:
		return "a list"
	case nodeString:
		return "a string"
	case nodeNumber:
		return "a number"
	case nodeBool:
		return "a boolean"
	default:
		return "null"
	}
}

// decodeJSON parses doc into a tree. It refuses duplicate keys within an
// object, nesting deeper than maxDepth and anything after the first value.
func decodeJSON(doc []byte) (*node, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	n, err := decodeValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the policy document at byte %d", dec.InputOffset())
	}
	return n, nil
}

func decodeValue(dec *json.Decoder, depth int) (*node, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("the document is nested more than %d levels deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, jsonError(dec, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &node{kind: nodeObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, jsonError(dec, err)
				}
				key, ok := kt.(string)
				if !ok { // encoding/json reports this itself; kept for safety
					return nil, fmt.Errorf("invalid JSON at byte %d: object key is not a string", dec.InputOffset())
				}
				for _, k := range n.keys {
					if k == key {
						return nil, fmt.Errorf("duplicate key %q at byte %d", key, dec.InputOffset())
					}
				}
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, key)
				n.values = append(n.values, v)
			}
			if _, err := dec.Token(); err != nil { // the closing '}'
				return nil, jsonError(dec, err)
			}
			return n, nil
		case '[':
			n := &node{kind: nodeArray}
			for dec.More() {
				v, err := decodeValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.values = append(n.values, v)
			}
			if _, err := dec.Token(); err != nil { // the closing ']'
				return nil, jsonError(dec, err)
			}
			return n, nil
		default:
			return nil, fmt.Errorf("invalid JSON at byte %d: unexpected %q", dec.InputOffset(), rune(t))
		}
	case string:
		return &node{kind: nodeString, str: t}, nil
	case json.Number:
		return &node{kind: nodeNumber, str: string(t)}, nil
	case bool:
		return &node{kind: nodeBool, b: t}, nil
	case nil:
		return &node{kind: nodeNull}, nil
	}
	return nil, fmt.Errorf("invalid JSON at byte %d", dec.InputOffset())
}

func jsonError(dec *json.Decoder, err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("invalid JSON: unexpected end of the document")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return fmt.Errorf("invalid JSON at byte %d: %v", dec.InputOffset(), err)
}
