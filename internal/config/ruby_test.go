package config

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestEmbeddedRuby: the forms real configurations use give what Fluentd
// gives; anything else is an error that names the expression.
func TestEmbeddedRuby(t *testing.T) {
	env := map[string]string{"SET": "value", "EMPTY": "", "PORT": "24224", "DIR": "app"}
	files := map[string]string{"/run/secrets/key": "s3cr3t\nsecond line\n"}
	opts := &Options{
		Getenv:   func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Hostname: func() (string, error) { return "node-7", nil },
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		},
	}
	wd, _ := os.Getwd()
	for _, c := range []struct{ value, want string }{
		{`"#{ENV['SET']}"`, "value"},
		{`"#{ENV["SET"]}"`, "value"},
		{`"#{ENV['UNSET']}"`, ""},
		{`"#{ENV['UNSET'] || 'fallback'}"`, "fallback"},
		{`"#{ENV['EMPTY'] || 'fallback'}"`, ""}, // "" is true in Ruby
		{`"#{ENV['UNSET'] || nil}"`, ""},
		{`"#{ENV['UNSET'] || false}"`, "false"},
		{`"#{ENV['UNSET'] || true}"`, "true"},
		{`"#{ENV['UNSET'] || 1}"`, "1"},
		{`"#{ENV['UNSET'] || -1}"`, "-1"},
		{`"#{ENV['UNSET'] || ENV['SET'] || 'x'}"`, "value"},
		{`"#{ENV.fetch('SET', 'd')}"`, "value"},
		{`"#{ENV.fetch('UNSET', 'd')}"`, "d"},
		{`"#{ENV.fetch('UNSET', ENV['PORT'])}"`, "24224"},
		{`"#{File.join('/var/log/', ENV.fetch('DIR', ''), 'f.pos')}"`, "/var/log/app/f.pos"},
		{`"#{File.join('/var/log', ENV.fetch('NONE', ''), 'f.pos')}"`, "/var/log/f.pos"},
		{`"#{Dir.pwd}/buffer"`, wd + "/buffer"},
		{`"#{worker_id}"`, "0"},
		{`"worker-#{worker_id}"`, "worker-0"},
		{`"#{Socket.gethostname}"`, "node-7"},
		{`"#{File.open('/run/secrets/key') do |f| f.readline end.rstrip}"`, "s3cr3t"},
		{`"#{File.read('/run/secrets/key').strip}"`, "s3cr3t\nsecond line"},
		{`"#{'a' + ENV['DIR'] + 'b'}"`, "aappb"},
		{`"#{ENV['DIR'].upcase}-#{ENV['PORT'].to_i}"`, "APP-24224"},
		{`"#{(ENV['UNSET'] || 'x').upcase}"`, "X"},
		{`"#{ENV['UNSET'] || 'x'}.conf"`, "x.conf"},
	} {
		root, err := Parse("t.conf", []byte("<source>\n  p "+c.value+"\n</source>\n"), opts)
		if err != nil {
			t.Errorf("%s: %v", c.value, err)
			continue
		}
		if got := root.Elements[0].Params[0].Value; got != c.want {
			t.Errorf("%s = %q, want %q", c.value, got, c.want)
		}
	}
	for _, bad := range []string{"`rm -rf /`", "system('id')", "ENV['A'].gsub('a','b')", "File.delete('/x')", "1 + 'a'", "ENV.fetch('UNSET')", "File.read('/nope')"} {
		_, err := Parse("t.conf", []byte("<source>\n  p \"#{"+bad+"}\"\n</source>\n"), opts)
		var ce *Error
		if err == nil || !errors.As(err, &ce) || ce.Pos.Line != 2 || !strings.Contains(err.Error(), "#{"+bad+"}") {
			t.Errorf("#{%s}: %v, want an error at t.conf:2 naming the expression", bad, err)
		}
	}
}

// TestUseDefaultAndUseNil: use_default leaves the parameter unset (its
// default applies), use_nil sets it to nothing; both only as the whole
// value.
func TestUseDefaultAndUseNil(t *testing.T) {
	opts := &Options{Getenv: func(string) (string, bool) { return "", false }}
	root, err := Parse("t.conf", []byte("<source>\n  a \"#{ENV['X'] || use_default}\"\n  b \"#{ENV['X'] || use_nil}\"\n</source>\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		A string `conf:"a"`
		B string `conf:"b"`
	}
	v.A, v.B = "default-a", "default-b"
	src := root.Elements[0]
	if err := Decode(src, &v); err != nil {
		t.Fatal(err)
	}
	if v.A != "default-a" || v.B != "" {
		t.Errorf("a=%q (want its default), b=%q (want nothing)", v.A, v.B)
	}
	if src.Param("a") != nil {
		t.Error("use_default left a parameter behind")
	}
	if _, err := Parse("t.conf", []byte("<source>\n  a \"x#{use_default}\"\n</source>\n"), opts); err == nil {
		t.Error("use_default inside a longer value was accepted")
	}
}

// TestEveryRubyErrorAtOnce: two expressions Sluice cannot evaluate and a
// bad escape, on three lines, are all reported by one parse.
func TestEveryRubyErrorAtOnce(t *testing.T) {
	_, err := Parse("t.conf", []byte("<source>\n  a \"#{`x`}\"\n  b \"#{system('y')}\"\n  c \"\\d\"\n</source>\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "t.conf:2:") || !strings.Contains(err.Error(), "t.conf:3:") ||
		!strings.Contains(err.Error(), "t.conf:4: unexpected back-slash escape character 'd'") {
		t.Errorf("%v", err)
	}
}
