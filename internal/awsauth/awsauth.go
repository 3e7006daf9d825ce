// Package awsauth builds AWS SDK configurations from the credential
// parameters and sections that fluent-plugin-s3 and aws-fluent-plugin-kinesis
// share. Without any of them, the SDK's default chain applies: environment,
// shared files, web identity (EKS), the ECS task role, the EC2 instance role.
package awsauth

import (
	"context"
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
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/logging"
)

// Options are the credential settings of a plugin. Embed it in a plugin
// struct: its fields decode from the plugin's section.
type Options struct {
	AssumeRole        *AssumeRole       `section:"assume_role_credentials" desc:"Assume an IAM role through STS, with the credentials found otherwise."`
	WebIdentity       *WebIdentity      `section:"web_identity_credentials" desc:"Assume an IAM role with a web identity token (EKS IRSA)."`
	InstanceProfile   *InstanceProfile  `section:"instance_profile_credentials" desc:"Use the EC2 instance profile's credentials from the instance metadata service."`
	SharedCredentials *SharedCredential `section:"shared_credentials" desc:"Use a profile of a shared credentials file (~/.aws/credentials)."`
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
}

// WebIdentity is <web_identity_credentials> (EKS service accounts).
type WebIdentity struct {
	RoleARN              string `conf:"role_arn,required" desc:"The ARN of the role to assume."`
	RoleSessionName      string `conf:"role_session_name,required" desc:"The session name the assumed role's activity is recorded under."`
	WebIdentityTokenFile string `conf:"web_identity_token_file,required" desc:"The file holding the web identity token."`
	Policy               string `conf:"policy" desc:"A session policy (JSON) that narrows the role's permissions."`
	DurationSeconds      int    `conf:"duration_seconds" desc:"How long the assumed role's credentials last (0: the STS default)."`
	STSRegion            string `conf:"sts_region" desc:"The region of the STS endpoint."`
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
// credentials, an optional proxy and TLS verification setting.
func Load(ctx context.Context, region string, static Static, o Options, proxyURI string, verifyPeer bool, log *slog.Logger) (aws.Config, error) {
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
	httpClient := awshttp.NewBuildableClient()
	if proxyURI != "" {
		proxy, err := url.Parse(proxyURI)
		if err != nil {
			return aws.Config{}, fmt.Errorf("proxy: %w", err)
		}
		httpClient = httpClient.WithTransportOptions(func(t *http.Transport) { t.Proxy = http.ProxyURL(proxy) })
	}
	if !verifyPeer {
		httpClient = httpClient.WithTransportOptions(func(t *http.Transport) {
			if t.TLSClientConfig != nil {
				t.TLSClientConfig.InsecureSkipVerify = true
			}
		})
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
					wo.Duration = time.Duration(wi.DurationSeconds) * time.Second
				}
			}))
	case o.InstanceProfile != nil:
		cfg.Credentials = aws.NewCredentialsCache(ec2rolecreds.New())
	}
	return cfg, nil
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
