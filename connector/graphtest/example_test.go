package graphtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// The code flow against the simulator: authorize (driving the consent
// page), redeem the code with PKCE, read the shared mailbox.
func Example() {
	sim := graphtest.NewServer()
	defer sim.Close()
	_, _ = sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{From: "lieferant@example.com", Subject: "Rechnung 4711",
		Attachments: []graphtest.Attachment{{Name: "RE-4711.pdf", ContentType: "application/pdf", Content: []byte("%PDF-1.7")}}})

	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	const challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" // S256 of verifier
	auth := sim.LoginURL() + "/organizations/oauth2/v2.0/authorize?" + url.Values{
		"client_id": {graphtest.DefaultClientID}, "response_type": {"code"}, "redirect_uri": {graphtest.DefaultRedirectURI},
		"scope": {"openid offline_access https://graph.microsoft.com/Mail.ReadWrite.Shared"},
		"state": {"xyz"}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}.Encode()
	back, err := graphtest.Authorize(context.Background(), nil, auth, graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		panic(err)
	}
	resp, err := http.PostForm(sim.LoginURL()+"/organizations/oauth2/v2.0/token", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {graphtest.DefaultClientID}, "client_secret": {graphtest.DefaultClientSecret},
		"code": {back.Query().Get("code")}, "redirect_uri": {graphtest.DefaultRedirectURI}, "code_verifier": {verifier},
	})
	if err != nil {
		panic(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()

	req, _ := http.NewRequest("GET", sim.GraphURL()+"/users/"+graphtest.DefaultMailbox+"/mailFolders/inbox/messages?$select=subject,hasAttachments", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	var page struct {
		Value []struct {
			Subject        string `json:"subject"`
			HasAttachments bool   `json:"hasAttachments"`
		} `json:"value"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&page)
	fmt.Println(back.Query().Get("state"), strings.HasPrefix(back.String(), graphtest.DefaultRedirectURI))
	fmt.Println(page.Value[0].Subject, page.Value[0].HasAttachments)
	// Output:
	// xyz true
	// Rechnung 4711 true
}
