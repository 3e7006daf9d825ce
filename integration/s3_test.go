//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func readAll(t *testing.T, r io.ReadCloser) []byte {
	t.Helper()
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzipLines(t *testing.T, b []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}

// seed002Conf is shared/compat/k8s-s3.conf as written, but for the http
// port and the buffer directory, which a test cannot take from the machine.
func seed002Conf(t *testing.T, port int, bufferDir string) string {
	t.Helper()
	raw, err := os.ReadFile("../internal/engine/testdata/k8s-s3.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for old, repl := range map[string]string{
		"port 8888":               fmt.Sprintf("port %d\n  bind 127.0.0.1", port),
		"path /var/log/fluent/s3": "path " + bufferDir,
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("the seed configuration no longer has %q", old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	return conf
}

func startSluiceEnv(t *testing.T, dir, conf string, env []string) *instance {
	t.Helper()
	return startSluiceIn(t, dir, conf, env...)
}

func postBody(t *testing.T, base string, at time.Time, body string) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("%s/app.events?time=%d", base, at.Unix()), "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %q: %d", body, resp.StatusCode)
	}
}

// TestSeed002EndToEnd runs seed 002's configuration against a real S3
// server: bodies for two shard paths over two hours become gzip objects
// <path>/<hostname>_<YYYYMMDDHH>_<index>.gz holding exactly the contents
// posted, none missing, none twice.
func TestSeed002EndToEnd(t *testing.T) {
	srv := startS3Server(t)
	dir := t.TempDir()
	port := freePort(t)
	in := startSluiceEnv(t, dir, seed002Conf(t, port, filepath.Join(dir, "buffer")), srv.Env(""))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// Two past hours, so that the lazy (timekey) flush is due at once.
	hours := []time.Time{time.Now().Add(-3 * time.Hour).Truncate(time.Hour), time.Now().Add(-2 * time.Hour).Truncate(time.Hour)}
	want := map[string][]string{}
	for h, hour := range hours {
		for _, shard := range []string{"customer-17/events", "customer-42/clicks"} {
			for i := 0; i < 50; i++ {
				content := fmt.Sprintf("payload %s hour %d line %d {\"k\":%d}", shard, h, i, i)
				postBody(t, base, hour.Add(time.Duration(i)*time.Second), shard+" "+content)
				prefix := fmt.Sprintf("%s/%s_%s_", shard, hostname(t), hour.Local().Format("2006010215"))
				want[prefix] = append(want[prefix], content)
			}
		}
	}
	keyRE := regexp.MustCompile(`^(.+/[^/]+_\d{10}_)(\d+)\.gz$`)
	deadline := time.Now().Add(60 * time.Second)
	var got map[string][]string
	for {
		got = map[string][]string{}
		for key, data := range srv.objects(t, "the-output-bucket") {
			m := keyRE.FindStringSubmatch(key)
			if m == nil {
				t.Fatalf("object key %q is not <path>/<hostname>_<YYYYMMDDHH>_<index>.gz", key)
			}
			got[m[1]] = append(got[m[1]], gunzipLines(t, data)...)
		}
		if len(got) == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	in.Stop()
	for prefix, lines := range want {
		sort.Strings(lines)
		g := got[prefix]
		sort.Strings(g)
		if strings.Join(g, "\n") != strings.Join(lines, "\n") {
			t.Errorf("objects under %s hold %d lines, want exactly the %d posted", prefix, len(g), len(lines))
		}
	}
	if len(got) != len(want) {
		t.Errorf("object prefixes %v, want %d", keys(got), len(want))
	}
}

// TestSeed002SustainedLoadNoDuplicates is seed 002's pipeline under
// sustained load without faults: 64 keep-alive clients post 40,000
// one-line bodies over four shard paths as fast as Sluice takes them, and
// every body is in the S3 objects exactly once.
func TestSeed002SustainedLoadNoDuplicates(t *testing.T) {
	srv := startS3Server(t)
	dir := t.TempDir()
	port := freePort(t)
	in := startSluiceEnv(t, dir, seed002Conf(t, port, filepath.Join(dir, "buffer")), srv.Env(""))
	// A past hour: its timekey (and timekey_wait) is over, so chunks
	// flush as they fill and once the posting ends.
	hour := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	url := fmt.Sprintf("http://127.0.0.1:%d/app.events?time=%d", port, hour.Unix())
	shards := []string{"customer-1/events", "customer-2/events", "customer-3/clicks", "customer-4/clicks"}
	const clients, n = 64, 40000
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	errs := make(chan error, clients)
	for c := 0; c < clients; c++ {
		go func() {
			for i := c; i < n; i += clients {
				body := fmt.Sprintf("%s line %d of the load", shards[i%len(shards)], i)
				resp, err := client.Post(url, "application/x-www-form-urlencoded", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("POST %q: HTTP %d", body, resp.StatusCode)
					return
				}
			}
			errs <- nil
		}()
	}
	for c := 0; c < clients; c++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	deadline := time.Now().Add(90 * time.Second)
	for {
		clear(seen)
		total := 0
		for _, data := range srv.objects(t, "the-output-bucket") {
			for _, line := range gunzipLines(t, data) {
				seen[line]++
				total++
			}
		}
		if total >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	in.Stop()
	missing, dups := 0, 0
	for i := 0; i < n; i++ {
		switch c := seen[fmt.Sprintf("line %d of the load", i)]; {
		case c == 0:
			missing++
		case c > 1:
			dups += c - 1
		}
	}
	if missing > 0 || dups > 0 {
		t.Errorf("%d bodies missing and %d duplicated of %d in the S3 objects, want each exactly once", missing, dups, n)
	}
}

func keys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// holdingProxy forwards to the S3 server; once armed, it lets the first
// object PUT through to the server but holds its response, so that the
// test can kill Sluice after the upload and before the chunk is committed.
type holdingProxy struct {
	mu      sync.Mutex
	armed   bool
	held    chan string // the key whose response is held
	release chan struct{}
}

func (p *holdingProxy) handler(target string) http.Handler {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &bufferedResponse{header: http.Header{}, code: 200}
		rp.ServeHTTP(rec, r)
		p.mu.Lock()
		hold := p.armed && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, ".gz")
		if hold {
			p.armed = false
		}
		p.mu.Unlock()
		if hold {
			p.held <- r.URL.Path
			<-p.release // the client is killed meanwhile
			return
		}
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.code)
		w.Write(rec.body.Bytes())
	})
}

type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header         { return b.header }
func (b *bufferedResponse) Write(p []byte) (int, error) { return b.body.Write(p) }
func (b *bufferedResponse) WriteHeader(code int)        { b.code = code }

// TestKillBetweenUploadAndCommit: Sluice is SIGKILLed after the server has
// stored an object but before the chunk was committed; after a restart the
// chunk is uploaded again to the same key, so there is one object, not two.
func TestKillBetweenUploadAndCommit(t *testing.T) {
	srv := startS3Server(t)
	proxy := &holdingProxy{armed: true, held: make(chan string, 1), release: make(chan struct{})}
	pport := freePort(t)
	ps := &http.Server{Addr: fmt.Sprintf("127.0.0.1:%d", pport), Handler: proxy.handler(srv.Endpoint)}
	go ps.ListenAndServe()
	defer ps.Close()
	defer close(proxy.release)

	dir := t.TempDir()
	port := freePort(t)
	conf := seed002Conf(t, port, filepath.Join(dir, "buffer"))
	first := startSluiceEnv(t, dir, conf, srv.Env(fmt.Sprintf("http://127.0.0.1:%d", pport)))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	hour := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	for i := 0; i < 20; i++ {
		postBody(t, base, hour, fmt.Sprintf("customer-1/crash line %d", i))
	}
	var heldPath string
	select {
	case heldPath = <-proxy.held:
	case <-time.After(60 * time.Second):
		t.Fatalf("no upload reached the server\n%s", first.Logs())
	}
	first.Kill() // the object is stored; the chunk is not committed
	before := srv.objects(t, "the-output-bucket")
	if len(before) != 1 {
		t.Fatalf("%d objects after the first upload, want 1", len(before))
	}

	second := startSluiceEnv(t, dir, conf, srv.Env(""))
	// The recovered chunks are written at once; wait for all 20 lines.
	var lines map[string]int
	var after map[string][]byte
	deadline := time.Now().Add(30 * time.Second)
	for {
		after = srv.objects(t, "the-output-bucket")
		lines = map[string]int{}
		for _, data := range after {
			for _, l := range gunzipLines(t, data) {
				lines[l]++
			}
		}
		if len(lines) >= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	second.Stop()
	heldKey := ""
	for k := range before {
		heldKey = k
	}
	if !strings.HasSuffix(heldPath, heldKey) {
		t.Fatalf("the stored object %s is not the held upload %s", heldKey, heldPath)
	}
	if _, ok := after[heldKey]; !ok {
		t.Errorf("the held object %s is gone", heldKey)
	}
	for l, n := range lines {
		if n != 1 {
			t.Errorf("line %q is stored %d times: the retry must reuse the key, not add an object", l, n)
		}
	}
	if len(lines) != 20 {
		t.Errorf("%d distinct lines stored, want the 20 posted", len(lines))
	}
}

// TestS3ObjectSettingsOnARealServer: fluent-plugin-s3's object settings,
// as its users write them, reach a real S3 server: the s3_metadata hash
// (placeholders and %{index}), tagging, bucket_lifecycle_rule, and
// store_as zstd at the <compress> level asked for.
func TestS3ObjectSettingsOnARealServer(t *testing.T) {
	srv := startS3Server(t)
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`
<source>
  @type http
  port %d
  bind 127.0.0.1
</source>
<match app.**>
  @type s3
  s3_bucket settings-bucket
  path logs/${tag}/
  s3_object_key_format %%{path}%%{time_slice}_%%{index}.%%{file_extension}
  store_as zstd
  <compress>
    level 19
  </compress>
  s3_metadata {"origin-tag": "${tag}", "object-index": "%%{index}"}
  tagging team=logs&retention=short
  <bucket_lifecycle_rule>
    id expire-logs
    prefix logs/
    expiration_days 14
  </bucket_lifecycle_rule>
  <buffer tag,time>
    timekey 1h
    timekey_wait 0s
  </buffer>
</match>
`, port)
	in := startSluiceEnv(t, dir, conf, srv.Env(""))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	hour := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	for i := 0; i < 20; i++ {
		resp, err := http.Post(fmt.Sprintf("%s/app.web?time=%d", base, hour.Unix()+int64(i)), "application/json", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var objects map[string][]byte
	deadline := time.Now().Add(60 * time.Second)
	for len(objects) == 0 && time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		objects = srv.objects(t, "settings-bucket")
	}
	in.Stop()
	if len(objects) != 1 {
		t.Fatalf("objects %v, want one", len(objects))
	}
	ctx := context.Background()
	c := srv.Client()
	for key, data := range objects {
		if !strings.HasPrefix(key, "logs/app.web/") || !strings.HasSuffix(key, "_0.zst") {
			t.Errorf("key %q", key)
		}
		zr, err := zstd.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		plain, err := io.ReadAll(zr)
		zr.Close()
		if err != nil || strings.Count(string(plain), "\n") != 20 {
			t.Errorf("object holds %d lines (%v), want 20", strings.Count(string(plain), "\n"), err)
		}
		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("settings-bucket"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if head.Metadata["origin-tag"] != "app.web" || head.Metadata["object-index"] != "0" {
			t.Errorf("object metadata %v", head.Metadata)
		}
		tags, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("settings-bucket"), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, tag := range tags.TagSet {
			got[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
		}
		if got["team"] != "logs" || got["retention"] != "short" || len(got) != 2 {
			t.Errorf("object tags %v", got)
		}
	}
	lc, err := c.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String("settings-bucket")})
	if err != nil {
		t.Fatalf("lifecycle: %v", err)
	}
	if len(lc.Rules) != 1 || aws.ToString(lc.Rules[0].ID) != "expire-logs" || aws.ToInt32(lc.Rules[0].Expiration.Days) != 14 {
		t.Errorf("lifecycle rules %+v", lc.Rules)
	}
}
