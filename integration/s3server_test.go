//go:build integration

package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// s3Server is a real S3-compatible server on loopback: MinIO, or versitygw
// when MinIO is not installed (scripts/test installs them with go install).
type s3Server struct {
	Endpoint, AccessKey, SecretKey string
	cmd                            *exec.Cmd
}

const (
	testAccessKey = "sluicetest"
	testSecretKey = "sluicetest-secret-key"
)

func findBinary(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(string(trimNL(gopath)), "bin", name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

func startS3Server(t testing.TB) *s3Server {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var cmd *exec.Cmd
	switch {
	case findBinary("minio") != "":
		cmd = exec.Command(findBinary("minio"), "server", dir, "--address", addr, "--console-address", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--quiet")
		cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+testAccessKey, "MINIO_ROOT_PASSWORD="+testSecretKey, "MINIO_BROWSER=off")
	case findBinary("versitygw") != "":
		cmd = exec.Command(findBinary("versitygw"), "--access", testAccessKey, "--secret", testSecretKey, "--port", addr, "posix", dir)
	default:
		t.Fatal("no S3 server: scripts/test installs MinIO (or versitygw) with go install")
	}
	logf, _ := os.Create(filepath.Join(dir, "..", "s3server.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	srv := &s3Server{Endpoint: "http://" + addr, AccessKey: testAccessKey, SecretKey: testSecretKey, cmd: cmd}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			if _, err := srv.Client().ListBuckets(context.Background(), &s3.ListBucketsInput{}); err == nil {
				return srv
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the S3 server did not come up on %s", addr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Client is an SDK client for checking what the server holds.
func (s *s3Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   &http.Client{Timeout: 30 * time.Second},
	})
}

// Env is what Sluice needs to reach the server through the SDK's
// standard environment variables, as a deployment would set them.
func (s *s3Server) Env(endpoint string) []string {
	if endpoint == "" {
		endpoint = s.Endpoint
	}
	return []string{"AWS_ENDPOINT_URL_S3=" + endpoint, "AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey, "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true"}
}

// objects lists every key in bucket with its content.
func (s *s3Server) objects(t *testing.T, bucket string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	c := s.Client()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("listing %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			got, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			data := readAll(t, got.Body)
			out[aws.ToString(o.Key)] = data
		}
	}
	return out
}
