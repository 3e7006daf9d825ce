package elasticsearch

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestParseHosts: host/port, hosts with and without scheme, per-host
// credentials and path, and Elastic Cloud's cloud_id.
func TestParseHosts(t *testing.T) {
	c := defaults("elasticsearch")
	c.User, c.Password, c.Path = "u", "p", "/es"
	c.Hosts = []string{"es-1:9201", "https://admin:secret@es-2/prefix/", " es-3 "}
	hosts, err := parseHosts(&c)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ url, user, pass string }{
		{"http://es-1:9201/es", "u", "p"},
		{"https://es-2:9200/prefix", "admin", "secret"},
		{"http://es-3:9200/es", "u", "p"},
	}
	if len(hosts) != len(want) {
		t.Fatalf("%d hosts", len(hosts))
	}
	for i, w := range want {
		if hosts[i].base.String() != w.url || hosts[i].user != w.user || hosts[i].pass != w.pass {
			t.Errorf("host %d: %s %s:%s, want %+v", i, hosts[i].base, hosts[i].user, hosts[i].pass, w)
		}
	}
	c = defaults("elasticsearch")
	c.CloudID = "logs:" + base64.StdEncoding.EncodeToString([]byte("eu-west-1.aws.found.io$abc123$kib456"))
	c.CloudAuth = "elastic:pw"
	hosts, err = parseHosts(&c)
	if err != nil || len(hosts) != 1 || hosts[0].base.String() != "https://abc123.eu-west-1.aws.found.io:443" || hosts[0].user != "elastic" || hosts[0].pass != "pw" {
		t.Errorf("cloud_id: %v %v", hosts, err)
	}
	c.CloudID = "logs:!!!"
	if _, err := parseHosts(&c); err == nil || !strings.Contains(err.Error(), "cloud_id") {
		t.Errorf("a bad cloud_id: %v", err)
	}
}

// TestPickRestsFailedHosts: requests go round-robin; a failed host rests,
// and when all rest the one whose rest ends first is tried.
func TestPickRestsFailedHosts(t *testing.T) {
	c := defaults("elasticsearch")
	c.Hosts = []string{"a:1", "b:1", "c:1"}
	hosts, _ := parseHosts(&c)
	cl := &client{hosts: hosts, resurrect: time.Minute}
	now := time.Now()
	seen := map[string]int{}
	for i := 0; i < 30; i++ {
		seen[cl.pick(now).String()]++
	}
	if seen["a:1"] != 10 || seen["b:1"] != 10 || seen["c:1"] != 10 {
		t.Errorf("round-robin %v", seen)
	}
	cl.rest(hosts[1])
	for i := 0; i < 10; i++ {
		if h := cl.pick(now); h == hosts[1] {
			t.Fatal("a resting host was picked")
		}
	}
	cl.rest(hosts[0])
	hosts[2].deadUntil.Store(now.Add(2 * time.Minute).UnixNano())
	if h := cl.pick(now); h != hosts[1] && h != hosts[0] {
		t.Errorf("all resting: picked %s, want the earliest to wake", h)
	}
}

// TestAuthHeaders: api_key goes as Authorization: ApiKey, user and
// password as basic authentication, custom_headers as given.
func TestAuthHeaders(t *testing.T) {
	var got []http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Clone())
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	for _, c := range []Config{
		{Hosts: []string{srv.URL}, APIKey: "aWQ6a2V5", CustomHeaders: map[string]string{"X-Tenant": "blue"}},
		{Hosts: []string{strings.Replace(srv.URL, "http://", "http://fluent:s3cret@", 1)}},
	} {
		c.Port, c.Scheme = 9200, "http"
		hosts, err := parseHosts(&c)
		if err != nil {
			t.Fatal(err)
		}
		cl := &client{hosts: hosts, http: srv.Client(), apiKey: c.APIKey, headers: c.CustomHeaders, gzipLevel: -1, timeout: 5 * time.Second}
		if _, _, err := cl.do(context.Background(), http.MethodGet, "/", "", nil, ""); err != nil {
			t.Fatal(err)
		}
	}
	if got[0].Get("Authorization") != "ApiKey aWQ6a2V5" || got[0].Get("X-Tenant") != "blue" {
		t.Errorf("api_key request headers %v", got[0])
	}
	if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("fluent:s3cret")); got[1].Get("Authorization") != want {
		t.Errorf("basic auth %q, want %q", got[1].Get("Authorization"), want)
	}
}
