package claimx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

func (c *Client) authorize(ctx context.Context, req *http.Request) error {
	switch c.cfg.Auth.Type {
	case AuthBearer:
		req.Header.Set("Authorization", "Bearer "+c.cfg.Auth.Token)
	case AuthBasic:
		req.SetBasicAuth(c.cfg.Auth.Username, c.cfg.Auth.Password)
	case AuthOAuth2:
		tok, err := c.oauth.token(ctx)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// oauthSource fetches, caches and refreshes an OAuth 2.0 client-credentials
// token: one token per client.
type oauthSource struct {
	client  *http.Client
	auth    Auth
	timeout time.Duration
	onToken func(string)

	mu     sync.Mutex
	tok    string
	expiry time.Time // zero: no known expiry
}

func (o *oauthSource) invalidate() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tok = ""
}

// token returns a valid token, fetching one when there is none or the cached
// one is about to expire. Callers wait for one fetch rather than each
// starting their own.
func (o *oauthSource) token(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.tok != "" && (o.expiry.IsZero() || time.Now().Before(o.expiry)) {
		return o.tok, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(o.auth.Scopes) > 0 {
		form.Set("scope", strings.Join(o.auth.Scopes, " "))
	}
	tctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, o.auth.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &Error{Class: ClassAuth, Reason: "building the oauth2 token request: " + urlErr(err)}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: client credentials go in the Basic header.
	req.SetBasicAuth(url.QueryEscape(o.auth.ClientID), url.QueryEscape(o.auth.ClientSecret))
	resp, err := o.client.Do(req)
	if err != nil {
		return "", &Error{Class: ClassTransient, Reason: "fetching the oauth2 token: " + urlErr(err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", &Error{Class: ClassTransient, Reason: "reading the oauth2 token: " + urlErr(err)}
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return "", &Error{Class: ClassTransient, Status: resp.StatusCode, Reason: fmt.Sprintf("oauth2 token endpoint answered %d", resp.StatusCode)}
	}
	var tr struct {
		AccessToken string      `json:"access_token"`
		ExpiresIn   json.Number `json:"expires_in"`
		Error       string      `json:"error"`
	}
	if resp.StatusCode != http.StatusOK {
		_ = json.Unmarshal(body, &tr)
		return "", &Error{Class: ClassAuth, Status: resp.StatusCode,
			Reason: fmt.Sprintf("oauth2 token endpoint refused the client credentials (status %d, error %q)", resp.StatusCode, tr.Error)}
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", &Error{Class: ClassAuth, Reason: "oauth2 token endpoint answered without an access_token"}
	}
	o.onToken(tr.AccessToken)
	o.tok, o.expiry = tr.AccessToken, time.Time{}
	if secs, err := tr.ExpiresIn.Float64(); err == nil && secs > 0 {
		life := time.Duration(secs * float64(time.Second))
		// Refresh ahead of expiry so no request carries a token that dies in
		// flight: a tenth of the lifetime, at most a minute.
		o.expiry = time.Now().Add(life - min(life/10, time.Minute))
	}
	return o.tok, nil
}
