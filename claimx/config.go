package claimx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// AuthType is an authentication scheme.
type AuthType string

// Authentication schemes.
const (
	// AuthBearer sends `Authorization: Bearer <Token>`.
	AuthBearer AuthType = "bearer"
	// AuthBasic sends HTTP Basic with Username and Password.
	AuthBasic AuthType = "basic"
	// AuthOAuth2 fetches an OAuth 2.0 client-credentials token from
	// TokenURL, caches it and refreshes it before it expires (and once after
	// a 401).
	AuthOAuth2 AuthType = "oauth2"
	// AuthNone sends no credentials.
	AuthNone AuthType = "none"
)

// Auth holds the credentials. Token, Password and ClientSecret are secrets:
// they never appear in an error.
type Auth struct {
	Type                             AuthType
	Token                            string
	Username, Password               string
	TokenURL, ClientID, ClientSecret string
	Scopes                           []string
}

// Retries tunes the retries of timeouts, connection errors, 429 and 5xx.
type Retries struct {
	// MaxAttempts is the number of HTTP attempts per request, the first
	// included.
	MaxAttempts int
	// InitialInterval is the wait before the second attempt; it doubles
	// each time, with ±50 % jitter.
	InitialInterval time.Duration
	// MaxInterval caps the wait between attempts, and is the longest
	// Retry-After honoured: a longer one ends the attempts.
	MaxInterval time.Duration
}

// Breaker tunes the circuit breaker over the HTTP attempts.
type Breaker struct {
	// FailureThreshold is the number of consecutive failed attempts that
	// open the circuit.
	FailureThreshold int
	// OpenTimeout is how long the circuit stays open before it lets probes
	// through.
	OpenTimeout time.Duration
	// HalfOpenMaxRequests is the number of probes let through while
	// half-open; that many successes close it.
	HalfOpenMaxRequests int
}

// Config is the connection to the API. New refuses a Config that is not
// complete: start from DefaultConfig.
type Config struct {
	// BaseURL is the API's absolute http(s) URL, e.g.
	// https://www.claimxperience.com/service/cxedirest.
	BaseURL string
	// Headers are sent with every request. `Accept: application/json` is
	// sent unless set here. Values of credential-like headers
	// (Authorization, *key*, *token*, *secret*, Cookie) are secrets.
	Headers map[string]string
	Auth    Auth
	// Timeout bounds one HTTP attempt, body included, and a token request.
	Timeout time.Duration
	// DialTimeout bounds opening a TCP connection.
	DialTimeout time.Duration
	// TLS, when not nil, is the TLS configuration of https connections.
	TLS     *tls.Config
	Retries Retries
	Breaker Breaker
	// RateLimitPerSecond, when positive, is the most requests (attempts,
	// retries included) sent per second. They are spaced evenly, 1/rate
	// apart, without bursts, so that an API limiting with a token bucket or
	// a one-second window never sees more than it allows. Token requests are
	// not limited.
	RateLimitPerSecond float64
	// MaxResponseBytes is the largest body accepted; a larger one fails as
	// ClassInvalidResponse (the record's failure: no wait makes it smaller).
	MaxResponseBytes int64
	// MaxIdleConnsPerHost is the number of idle connections kept open to
	// the API (the requests expected in flight at once).
	MaxIdleConnsPerHost int
}

// DefaultConfig is a complete Config for baseURL with the defaults of the
// claimx_connection processor (bearer auth still needs its token).
func DefaultConfig(baseURL string) Config {
	return Config{
		BaseURL:             baseURL,
		Auth:                Auth{Type: AuthBearer},
		Timeout:             30 * time.Second,
		DialTimeout:         10 * time.Second,
		Retries:             Retries{MaxAttempts: 3, InitialInterval: 2 * time.Second, MaxInterval: 60 * time.Second},
		Breaker:             Breaker{FailureThreshold: 5, OpenTimeout: 30 * time.Second, HalfOpenMaxRequests: 1},
		MaxResponseBytes:    10 << 20,
		MaxIdleConnsPerHost: 20,
	}
}

// parseBaseURL checks the base URL; errors never echo it (it may hold
// credentials).
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, errors.New("parsing base_url: not a valid URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("base_url must be an absolute http or https URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("base_url must not have a query or fragment: use the query field")
	}
	return u, nil
}

// Validate reports the first thing that makes c unusable. The messages name
// the claimx_connection fields.
func (c Config) Validate() error {
	if _, err := parseBaseURL(c.BaseURL); err != nil {
		return err
	}
	if err := c.Auth.validate(); err != nil {
		return err
	}
	if c.Timeout <= 0 || c.DialTimeout <= 0 {
		return errors.New("timeout and dial_timeout must be positive")
	}
	r := c.Retries
	if r.MaxAttempts < 1 || r.InitialInterval <= 0 || r.MaxInterval < r.InitialInterval {
		return fmt.Errorf("retries: max_attempts must be at least 1 and 0 < initial_interval <= max_interval, got %d, %v, %v",
			r.MaxAttempts, r.InitialInterval, r.MaxInterval)
	}
	b := c.Breaker
	if b.FailureThreshold < 1 || b.OpenTimeout <= 0 || b.HalfOpenMaxRequests < 1 {
		return errors.New("circuit_breaker: failure_threshold and half_open_max_requests must be at least 1 and open_timeout positive")
	}
	if c.RateLimitPerSecond < 0 {
		return fmt.Errorf("rate_limit_per_second must not be negative, got %v", c.RateLimitPerSecond)
	}
	if c.MaxResponseBytes < 1 {
		return fmt.Errorf("max_response_bytes must be positive, got %d", c.MaxResponseBytes)
	}
	if c.MaxIdleConnsPerHost < 1 {
		return fmt.Errorf("max idle connections per host must be at least 1, got %d", c.MaxIdleConnsPerHost)
	}
	return nil
}

func (a Auth) validate() error {
	switch a.Type {
	case AuthBearer:
		if a.Token == "" {
			return errors.New("auth.token is required for bearer auth (is CLAIMX_API_TOKEN set?)")
		}
	case AuthBasic:
		if a.Username == "" || a.Password == "" {
			return errors.New("auth.username and auth.password are required for basic auth")
		}
	case AuthOAuth2:
		if a.TokenURL == "" || a.ClientID == "" || a.ClientSecret == "" {
			return errors.New("auth.token_url, auth.client_id and auth.client_secret are required for oauth2 auth")
		}
		u, err := url.Parse(a.TokenURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errors.New("auth.token_url must be an absolute http or https URL")
		}
	case AuthNone:
	default:
		return fmt.Errorf("auth.type %q is not one of bearer, basic, oauth2, none", a.Type)
	}
	return nil
}
