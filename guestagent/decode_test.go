package guestagent

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDecodeReply(t *testing.T) {
	cases := []struct {
		in      string
		ret     string
		class   string
		wantErr bool
	}{
		{in: `{"return": {}}`, ret: `{}`},
		{in: `{"return": 42}`, ret: `42`},
		{in: `{"return": null}`, ret: `null`},
		{in: "\xff\xff{\"return\": 1}", ret: `1`},
		{in: "garbage\xff{\"return\": 1}", ret: `1`},
		{in: `{"error": {"class": "CommandNotFound", "desc": "nope"}}`, class: "CommandNotFound"},
		{in: `{"error": {"desc": "no class"}}`, wantErr: true},
		{in: `{"error": "string"}`, wantErr: true},
		{in: `{"something": 1}`, wantErr: true},
		{in: `[1,2]`, wantErr: true},
		{in: `{"return": `, wantErr: true},
		{in: ``, wantErr: true},
	}
	for _, tc := range cases {
		rep, err := decodeReply([]byte(tc.in))
		switch {
		case tc.wantErr:
			if err == nil {
				t.Errorf("%q: want error, got %+v", tc.in, rep)
			}
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.class != "":
			if rep.Err == nil || rep.Err.Class != tc.class {
				t.Errorf("%q: got %+v", tc.in, rep)
			}
		case string(rep.Return) != tc.ret:
			t.Errorf("%q: return %s, want %s", tc.in, rep.Return, tc.ret)
		}
	}
}

func TestReadLineNoLengthLimit(t *testing.T) {
	long := `{"return": "` + strings.Repeat("x", 5<<20) + `"}`
	r := bufio.NewReaderSize(strings.NewReader("\n  \n\xff"+long+"\n"), 16)
	line, err := readLine(r)
	if err != nil || len(line) != len(long) {
		t.Fatalf("got %d bytes, %v", len(line), err)
	}
	if _, err := readLine(r); !errors.Is(err, io.EOF) {
		t.Fatalf("want EOF, got %v", err)
	}
}

func TestSkipToDelimiterBeyondBuffer(t *testing.T) {
	in := strings.Repeat("junk", 100) + "\xff{\"return\": 7}\n"
	r := bufio.NewReaderSize(strings.NewReader(in), 16)
	if err := skipToDelimiter(r); err != nil {
		t.Fatal(err)
	}
	line, _ := readLine(r)
	if string(line) != `{"return": 7}` {
		t.Fatalf("got %q", line)
	}
}

// FuzzDecode feeds arbitrary agent output through the line reader and the
// reply decoder: no panics, and every line is either one well-formed reply
// (exactly one of return/error) or an error.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"return": {}}` + "\n",
		"\xff{\"return\": 123}\n",
		`{"error": {"class": "GenericError", "desc": "JSON parse error, stray '\uFFFD'"}}` + "\n",
		`{"return": {"exitcode": 0, "out-data": "aGkK", "exited": true}}` + "\n",
		"garbage\x00\xfe\xff{\"return\": 1}\n{\"return\"",
		`{"error": null}` + "\n" + `{"return": [1, {"a": "b"}]}` + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for {
			line, err := readLine(r)
			if err != nil {
				return
			}
			rep, err := decodeReply(line)
			if err != nil {
				if rep.Return != nil || rep.Err != nil {
					t.Fatalf("error with a value: %+v %v", rep, err)
				}
				continue
			}
			if (rep.Return != nil) == (rep.Err != nil) {
				t.Fatalf("%q: want exactly one of return/error, got %+v", line, rep)
			}
		}
	})
}
