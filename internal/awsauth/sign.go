package awsauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Signer signs requests that Sluice writes itself (Firehose and Kinesis
// batch calls, Amazon OpenSearch Service's _bulk) with AWS SigV4, the
// payload hashed, for one service and region, with the SDK's signer.
type Signer struct {
	Creds           aws.CredentialsProvider
	Service, Region string
	signer          *v4.Signer
}

// NewSigner returns a Signer; nil credentials sign anonymously.
func NewSigner(creds aws.CredentialsProvider, service, region string) *Signer {
	if creds == nil {
		creds = aws.AnonymousCredentials{}
	}
	return &Signer{Creds: creds, Service: service, Region: region, signer: v4.NewSigner()}
}

// Sign adds the SigV4 headers to req, whose body is payload.
func (s *Signer) Sign(ctx context.Context, req *http.Request, payload []byte) error {
	creds, err := s.Creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("AWS credentials: %w", err)
	}
	sum := sha256.Sum256(payload)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	return s.signer.SignHTTP(ctx, creds, req, hash, s.Service, s.Region, time.Now())
}
