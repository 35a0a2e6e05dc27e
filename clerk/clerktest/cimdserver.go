package clerktest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
)

// ClientMetadataServer serves one client ID metadata document, as a CIMD
// client's publisher does, over loopback TLS: the SDKs accept only an https
// client_id URL. Point the emulator at it with WithLoopbackClientMetadata(true)
// and WithClientMetadataTransport(s.Transport()), and close it when done.
type ClientMetadataServer struct {
	// ClientID is the document's URL, which is the client's client_id.
	ClientID string
	srv      *httptest.Server
}

// NewClientMetadataServer serves, at path, the metadata document of a public
// client (token_endpoint_auth_method none, the authorization code and
// refresh token grants) named name with the one redirectURI. Like
// httptest.NewServer, it panics if it cannot listen.
func NewClientMetadataServer(path, name, redirectURI string) *ClientMetadataServer {
	var body []byte // set before the server starts
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	clientID := "https://" + srv.Listener.Addr().String() + path
	var err error
	body, err = json.Marshal(map[string]any{
		"client_id":                  clientID,
		"client_name":                name,
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	if err != nil {
		panic(fmt.Sprintf("clerktest: encode client metadata: %v", err))
	}
	srv.StartTLS()
	return &ClientMetadataServer{ClientID: clientID, srv: srv}
}

// Transport trusts the server's certificate, for WithClientMetadataTransport.
func (s *ClientMetadataServer) Transport() http.RoundTripper { return s.srv.Client().Transport }

// Close stops the server.
func (s *ClientMetadataServer) Close() { s.srv.Close() }
