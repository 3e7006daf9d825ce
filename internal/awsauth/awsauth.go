// Package awsauth builds AWS SDK configurations from the credential
// parameters and sections that fluent-plugin-s3 and aws-fluent-plugin-kinesis
// share. Without any of them, the SDK's default chain applies: environment,
// shared files, web identity (EKS), the ECS task role, the EC2 instance role.
package awsauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/processcreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"

	"github.com/sluice-log/sluice/internal/transport"
)

// Options are the credential settings of a plugin. Embed it in a plugin
// struct: its fields decode from the plugin's section.
type Options struct {
	AssumeRole        *AssumeRole        `section:"assume_role_credentials" desc:"Assume an IAM role through STS, with the credentials found otherwise."`
	WebIdentity       *WebIdentity       `section:"web_identity_credentials" desc:"Assume an IAM role with a web identity token (EKS IRSA)."`
	InstanceProfile   *InstanceProfile   `section:"instance_profile_credentials" desc:"Use the EC2 instance profile's credentials from the instance metadata service."`
	SharedCredentials *SharedCredential  `section:"shared_credentials" desc:"Use a profile of a shared credentials file (~/.aws/credentials)."`
	Process           *ProcessCredential `section:"process_credentials" desc:"Run a command that prints credentials, as the AWS CLI's credential_process does."`
}

// ProcessCredential is <process_credentials>.
type ProcessCredential struct {
	Process string `conf:"process,required" desc:"The command line to run; it prints the credentials as JSON (Version 1, AccessKeyId, SecretAccessKey, SessionToken, Expiration)."`
}

// HTTP is how a plugin's requests reach AWS.
type HTTP struct {
	Proxy      string // an HTTP proxy URL
	VerifyPeer bool
	CABundle   string // a PEM file of CA certificates, instead of the system's
	CADir      string // a directory of PEM files of CA certificates
}

// AssumeRole is <assume_role_credentials>.
type AssumeRole struct {
	RoleARN         string        `conf:"role_arn,required" desc:"The ARN of the role to assume."`
	RoleSessionName string        `conf:"role_session_name,required" desc:"The session name the assumed role's activity is recorded under."`
	DurationSeconds time.Duration `conf:"duration_seconds" desc:"How long the assumed role's credentials last (0: the STS default)."`
	ExternalID      string        `conf:"external_id" desc:"The external ID the role's trust policy asks for."`
	Policy          string        `conf:"policy" desc:"A session policy (JSON) that narrows the role's permissions."`
	STSRegion       string        `conf:"sts_region" desc:"The region of the STS endpoint."`
	STSEndpointURL  string        `conf:"sts_endpoint_url" desc:"The STS endpoint, instead of the region's."`
	STSHTTPProxy    string        `conf:"sts_http_proxy" desc:"An HTTP proxy for the STS requests only."`
}

// WebIdentity is <web_identity_credentials> (EKS service accounts).
type WebIdentity struct {
	RoleARN              string        `conf:"role_arn,required" desc:"The ARN of the role to assume."`
	RoleSessionName      string        `conf:"role_session_name,required" desc:"The session name the assumed role's activity is recorded under."`
	WebIdentityTokenFile string        `conf:"web_identity_token_file,required" desc:"The file holding the web identity token."`
	Policy               string        `conf:"policy" desc:"A session policy (JSON) that narrows the role's permissions."`
	DurationSeconds      time.Duration `conf:"duration_seconds" desc:"How long the assumed role's credentials last, in seconds or as 1h (0: the STS default)."`
	STSRegion            string        `conf:"sts_region" desc:"The region of the STS endpoint."`
}

// InstanceProfile is <instance_profile_credentials>.
type InstanceProfile struct {
	Retries    int    `conf:"retries" desc:"How many times the metadata service is asked before giving up."`
	IPAddress  string `conf:"ip_address" desc:"The metadata service's address, instead of 169.254.169.254."`
	Port       int    `conf:"port" desc:"The metadata service's port."`
	HTTPOpenTO string `conf:"http_open_timeout" desc:"Accepted for Fluentd compatibility; the SDK's timeouts apply." ignored:"the SDK's timeouts apply"`
	HTTPReadTO string `conf:"http_read_timeout" desc:"Accepted for Fluentd compatibility; the SDK's timeouts apply." ignored:"the SDK's timeouts apply"`
}

// SharedCredential is <shared_credentials>.
type SharedCredential struct {
	Path        string `conf:"path" desc:"The shared credentials file, instead of ~/.aws/credentials."`
	ProfileName string `conf:"profile_name" desc:"The profile to use, instead of default."`
}

// Static are keys given as parameters.
type Static struct {
	KeyID, Secret, SessionToken string
}

// Region is the configured region, else AWS_REGION, else us-east-1 (the
// plugins' default).
func Region(configured string) string {
	if configured != "" {
		return configured
	}
	if r := os.Getenv("AWS_REGION"); r != "" {
		return r
	}
	return "us-east-1"
}

// Load returns an SDK configuration for region with the chosen
// credentials and the plugin's HTTP settings.
func Load(ctx context.Context, region string, static Static, o Options, h HTTP, log *slog.Logger) (aws.Config, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region), awsconfig.WithLogger(sdkLogger(log))}
	if static.KeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(static.KeyID, static.Secret, static.SessionToken)))
	}
	if sc := o.SharedCredentials; sc != nil {
		if sc.Path != "" {
			opts = append(opts, awsconfig.WithSharedCredentialsFiles([]string{sc.Path}))
		}
		if sc.ProfileName != "" {
			opts = append(opts, awsconfig.WithSharedConfigProfile(sc.ProfileName))
		}
	}
	httpClient, err := h.client()
	if err != nil {
		return aws.Config{}, err
	}
	// One attempt per call: the SDK's own retries (three attempts with
	// backoff by default) would hide failures inside a flush for seconds
	// and resend whole requests the service may have taken. Sluice retries
	// where its users configure it and see it: retries_on_batch_request for
	// the records a batch call failed, the <buffer> retry parameters for a
	// chunk, each logged and counted in fluentd_output_status_retry_count.
	opts = append(opts, awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }))
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("AWS configuration: %w", err)
	}
	switch {
	case o.AssumeRole != nil:
		ar := o.AssumeRole
		stsCfg := cfg.Copy()
		if ar.STSRegion != "" {
			stsCfg.Region = ar.STSRegion
		}
		if ar.STSHTTPProxy != "" {
			stsHTTP := h
			stsHTTP.Proxy = ar.STSHTTPProxy
			c, err := stsHTTP.client()
			if err != nil {
				return aws.Config{}, fmt.Errorf("sts_http_proxy: %w", err)
			}
			stsCfg.HTTPClient = c
		}
		stsClient := sts.NewFromConfig(stsCfg, func(so *sts.Options) {
			if ar.STSEndpointURL != "" {
				so.BaseEndpoint = aws.String(ar.STSEndpointURL)
			}
		})
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, ar.RoleARN, func(ao *stscreds.AssumeRoleOptions) {
			ao.RoleSessionName = ar.RoleSessionName
			if ar.ExternalID != "" {
				ao.ExternalID = aws.String(ar.ExternalID)
			}
			if ar.Policy != "" {
				ao.Policy = aws.String(ar.Policy)
			}
			if ar.DurationSeconds > 0 {
				ao.Duration = ar.DurationSeconds
			}
		}))
	case o.WebIdentity != nil:
		wi := o.WebIdentity
		stsCfg := cfg.Copy()
		if wi.STSRegion != "" {
			stsCfg.Region = wi.STSRegion
		}
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewWebIdentityRoleProvider(sts.NewFromConfig(stsCfg), wi.RoleARN,
			stscreds.IdentityTokenFile(wi.WebIdentityTokenFile), func(wo *stscreds.WebIdentityRoleOptions) {
				wo.RoleSessionName = wi.RoleSessionName
				if wi.Policy != "" {
					wo.Policy = aws.String(wi.Policy)
				}
				if wi.DurationSeconds > 0 {
					wo.Duration = wi.DurationSeconds
				}
			}))
	case o.InstanceProfile != nil:
		cfg.Credentials = aws.NewCredentialsCache(ec2rolecreds.New())
	case o.Process != nil:
		cfg.Credentials = aws.NewCredentialsCache(processcreds.NewProvider(o.Process.Process))
	}
	return cfg, nil
}

// client is the HTTP client of the SDK's calls: the proxy, the CA
// certificates and the verification the plugin asks for.
func (h HTTP) client() (*awshttp.BuildableClient, error) {
	c := awshttp.NewBuildableClient()
	if h.Proxy != "" {
		proxy, err := url.Parse(h.Proxy)
		if err != nil {
			return nil, fmt.Errorf("proxy: %w", err)
		}
		c = c.WithTransportOptions(func(t *http.Transport) { t.Proxy = http.ProxyURL(proxy) })
	}
	var roots *x509.CertPool
	addPEM := func(path string) error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(b) {
			return fmt.Errorf("%s holds no PEM certificate", path)
		}
		return nil
	}
	if h.CABundle != "" {
		if err := addPEM(h.CABundle); err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
	}
	if h.CADir != "" {
		files, err := transport.PEMFiles(h.CADir)
		if err != nil {
			return nil, fmt.Errorf("CA directory: %w", err)
		}
		for _, f := range files {
			if err := addPEM(f); err != nil {
				return nil, fmt.Errorf("CA directory: %w", err)
			}
		}
	}
	if roots != nil || !h.VerifyPeer {
		c = c.WithTransportOptions(func(t *http.Transport) {
			if t.TLSClientConfig == nil {
				t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
			}
			if roots != nil {
				t.TLSClientConfig.RootCAs = roots
			}
			t.TLSClientConfig.InsecureSkipVerify = !h.VerifyPeer
		})
	}
	return c, nil
}

// sdkLogger sends what the SDK logs (a missing checksum, a deprecated
// setting) to the plugin's logger, so that no raw "SDK 2026/..." line
// reaches Sluice's own log, where parsers expect its format.
func sdkLogger(log *slog.Logger) logging.Logger {
	if log == nil {
		return logging.Nop{}
	}
	return logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
		msg := fmt.Sprintf(format, v...)
		if c == logging.Warn {
			log.Warn("AWS SDK: " + msg)
		} else {
			log.Debug("AWS SDK: " + msg)
		}
	})
}
