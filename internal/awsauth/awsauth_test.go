package awsauth

import (
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/logging"
)

// fakeSTS answers AssumeRole and AssumeRoleWithWebIdentity in the AWS
// Query protocol's documented shape (form-encoded POST, XML answer). STS
// has no local server; this is its wire API, and the SDK's own client and
// credential providers talk to it.
type fakeSTS struct {
	mu    sync.Mutex
	forms []map[string]string
	auth  []string
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form := map[string]string{}
	for k := range r.PostForm {
		form[k] = r.PostForm.Get(k)
	}
	f.mu.Lock()
	f.forms = append(f.forms, form)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	action := form["Action"]
	if action != "AssumeRole" && action != "AssumeRoleWithWebIdentity" {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `<ErrorResponse><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>%s</Message></Error><RequestId>1</RequestId></ErrorResponse>`, action)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%[1]sResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <%[1]sResult>
    <Credentials>
      <AccessKeyId>ASIA%[2]s</AccessKeyId>
      <SecretAccessKey>temporary-secret</SecretAccessKey>
      <SessionToken>token-for-%[3]s</SessionToken>
      <Expiration>%[4]s</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/sluice/%[3]s</Arn>
      <AssumedRoleId>AROATEST:%[3]s</AssumedRoleId>
    </AssumedRoleUser>
  </%[1]sResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</%[1]sResponse>`, action, strings.ToUpper(action), form["RoleSessionName"], time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

func TestAssumeRoleCredentials(t *testing.T) {
	sts := &fakeSTS{}
	srv := httptest.NewServer(sts)
	defer srv.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDBASE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := Load(context.Background(), "us-west-2", Static{}, Options{AssumeRole: &AssumeRole{
		RoleARN: "arn:aws:iam::123456789012:role/sluice", RoleSessionName: "sluice-agg", ExternalID: "ext-1",
		DurationSeconds: 900 * time.Second, STSEndpointURL: srv.URL}}, HTTP{VerifyPeer: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "ASIAASSUMEROLE" || creds.SessionToken != "token-for-sluice-agg" {
		t.Errorf("credentials %+v, want the role's", creds)
	}
	form := sts.forms[0]
	for k, want := range map[string]string{"RoleArn": "arn:aws:iam::123456789012:role/sluice", "RoleSessionName": "sluice-agg",
		"ExternalId": "ext-1", "DurationSeconds": "900"} {
		if form[k] != want {
			t.Errorf("AssumeRole %s = %q, want %q", k, form[k], want)
		}
	}
	if !strings.Contains(sts.auth[0], "Credential=AKIDBASE/") {
		t.Errorf("AssumeRole was not signed with the base credentials: %q", sts.auth[0])
	}
}

func TestWebIdentityCredentials(t *testing.T) {
	sts := &fakeSTS{}
	srv := httptest.NewServer(sts)
	defer srv.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("eyJ.service-account.token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_STS", srv.URL)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := Load(context.Background(), "us-west-2", Static{}, Options{WebIdentity: &WebIdentity{
		RoleARN: "arn:aws:iam::123456789012:role/eks-sluice", RoleSessionName: "pod-1", WebIdentityTokenFile: token}}, HTTP{VerifyPeer: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "ASIAASSUMEROLEWITHWEBIDENTITY" || creds.SessionToken != "token-for-pod-1" {
		t.Errorf("credentials %+v, want the role's", creds)
	}
	if got := sts.forms[0]["WebIdentityToken"]; got != "eyJ.service-account.token" {
		t.Errorf("WebIdentityToken %q, want the file's content", got)
	}
}

func TestStaticCredentialsAndRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	if Region("") != "eu-west-1" || Region("us-west-2") != "us-west-2" {
		t.Error("region fallback")
	}
	cfg, err := Load(context.Background(), "us-west-2", Static{KeyID: "AKIDSTATIC", Secret: "s"}, Options{}, HTTP{VerifyPeer: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "AKIDSTATIC" {
		t.Errorf("credentials %+v, %v", creds, err)
	}
}

// TestSDKLogGoesToThePluginLogger: what the SDK logs arrives in the
// plugin's logger, warnings as warnings, not as raw lines on stderr.
func TestSDKLogGoesToThePluginLogger(t *testing.T) {
	var b strings.Builder
	l := sdkLogger(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Logf(logging.Warn, "Response has no supported checksum. Not validating response payload.")
	l.Logf(logging.Debug, "request %d", 7)
	out := b.String()
	if !strings.Contains(out, `level=WARN msg="AWS SDK: Response has no supported checksum.`) || !strings.Contains(out, `level=DEBUG msg="AWS SDK: request 7"`) {
		t.Errorf("logged:\n%s", out)
	}
	sdkLogger(nil).Logf(logging.Warn, "dropped") // no logger: nothing, no panic
}

// assumeRole loads credentials for a role whose STS endpoint is endpoint.
func assumeRole(t *testing.T, endpoint, stsProxy string, h HTTP) (aws.Credentials, error) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDBASE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "base-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := Load(context.Background(), "us-west-2", Static{}, Options{AssumeRole: &AssumeRole{
		RoleARN: "arn:aws:iam::123456789012:role/sluice", RoleSessionName: "s", STSEndpointURL: endpoint, STSHTTPProxy: stsProxy}}, h, nil)
	if err != nil {
		return aws.Credentials{}, err
	}
	return cfg.Credentials.Retrieve(context.Background())
}

// TestSTSHTTPProxy: with sts_http_proxy the STS calls go through that
// proxy (an HTTP proxy gets the absolute URL of a plain-HTTP request).
func TestSTSHTTPProxy(t *testing.T) {
	var hosts []string
	var mu sync.Mutex
	sts := &fakeSTS{}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts = append(hosts, r.URL.Host)
		mu.Unlock()
		sts.ServeHTTP(w, r)
	}))
	defer proxy.Close()
	creds, err := assumeRole(t, "http://sts.example.invalid", proxy.URL, HTTP{VerifyPeer: true})
	if err != nil {
		t.Fatal(err)
	}
	if creds.AccessKeyID != "ASIAASSUMEROLE" || len(hosts) != 1 || hosts[0] != "sts.example.invalid" {
		t.Errorf("credentials %+v, proxy saw %v", creds, hosts)
	}
}

// TestCABundle: an endpoint whose certificate a private CA signed is
// trusted with ssl_ca_bundle (or a directory of such files), and refused
// without it.
func TestCABundle(t *testing.T) {
	srv := httptest.NewTLSServer(&fakeSTS{})
	defer srv.Close()
	if _, err := assumeRole(t, srv.URL, "", HTTP{VerifyPeer: true}); err == nil {
		t.Fatal("a certificate from an unknown CA was trusted")
	}
	dir := t.TempDir()
	bundle := filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(bundle, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, h := range []HTTP{{VerifyPeer: true, CABundle: bundle}, {VerifyPeer: true, CADir: dir}} {
		if creds, err := assumeRole(t, srv.URL, "", h); err != nil || creds.AccessKeyID != "ASIAASSUMEROLE" {
			t.Errorf("%+v: %+v, %v", h, creds, err)
		}
	}
	if _, err := (HTTP{CABundle: filepath.Join(dir, "missing.pem")}).client(); err == nil {
		t.Error("a missing CA bundle was accepted")
	}
	if err := os.WriteFile(bundle, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (HTTP{CABundle: bundle}).client(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("a bundle with no certificate: %v", err)
	}
}

// TestProcessCredentials: <process_credentials> runs the command and uses
// the credentials it prints in credential_process's JSON shape.
func TestProcessCredentials(t *testing.T) {
	script := filepath.Join(t.TempDir(), "creds.sh")
	body := "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIDPROCESS\", \"SecretAccessKey\": \"s\", \"SessionToken\": \"tok\"}'\n"
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	cfg, err := Load(context.Background(), "us-west-2", Static{}, Options{Process: &ProcessCredential{Process: script}}, HTTP{VerifyPeer: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "AKIDPROCESS" || creds.SessionToken != "tok" {
		t.Errorf("credentials %+v, %v", creds, err)
	}
}
