package guestagent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// syncDelimiter is the byte QGA writes before a guest-sync-delimited reply
// and the byte we send to reset its JSON lexer. It never occurs in UTF-8
// JSON, so anything before it on a line is garbage.
const syncDelimiter = 0xFF

// reply is one decoded agent reply: exactly one of Return and Err is set.
type reply struct {
	Return json.RawMessage
	Err    *Error // Command is left empty; the caller knows it
}

// readLine returns the next non-blank line, without the newline and
// without anything up to and including the last 0xFF on it. It has no
// length limit: a 16 MiB exec output is one line.
func readLine(r *bufio.Reader) ([]byte, error) {
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			// A partial line is an unfinished reply: the caller resyncs.
			return nil, err
		}
		if i := bytes.LastIndexByte(line, syncDelimiter); i >= 0 {
			line = line[i+1:]
		}
		line = bytes.TrimSpace(line)
		if len(line) > 0 {
			return line, nil
		}
	}
}

// skipToDelimiter discards input up to and including the next 0xFF
// without buffering what it throws away.
func skipToDelimiter(r *bufio.Reader) error {
	for {
		_, err := r.ReadSlice(syncDelimiter)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

// decodeReply parses one reply line. Anything that is not a JSON object
// with a "return" member or an "error" object carrying a class is an error.
func decodeReply(line []byte) (reply, error) {
	if i := bytes.LastIndexByte(line, syncDelimiter); i >= 0 {
		line = line[i+1:]
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(line, &members); err != nil {
		return reply{}, fmt.Errorf("undecodable reply %s: %w", abbreviate(line), err)
	}
	if raw, ok := members["error"]; ok {
		var e struct {
			Class *string `json:"class"`
			Desc  string  `json:"desc"`
		}
		if err := json.Unmarshal(raw, &e); err != nil || e.Class == nil {
			return reply{}, fmt.Errorf("malformed error reply %s", abbreviate(line))
		}
		return reply{Err: &Error{Class: *e.Class, Desc: e.Desc}}, nil
	}
	if raw, ok := members["return"]; ok {
		return reply{Return: raw}, nil
	}
	return reply{}, fmt.Errorf("reply has neither return nor error: %s", abbreviate(line))
}

// abbreviate keeps error messages short when a reply is megabytes long.
func abbreviate(b []byte) string {
	const max = 120
	if len(b) > max {
		return fmt.Sprintf("%q... (%d bytes)", b[:max], len(b))
	}
	return fmt.Sprintf("%q", b)
}
