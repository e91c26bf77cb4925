package graphtest

import "net/http"

// directory answers /me, /users/{id}, memberOf and getMemberGroups.
func (s *Server) directory(r *http.Request, p *principal, rt graphRoute, who string) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByID(who)
	if u != nil && u.TenantID != p.tid {
		u = nil
	}
	var groups []*Group
	enabled := true
	if u != nil {
		groups = s.groupsOf(u)
	} else if mb := s.mailboxByAddress(who); mb != nil && mb.TenantID == p.tid {
		// A shared mailbox is a (disabled) user object in the directory.
		u, enabled = &user{User: User{ID: mb.ID, UPN: mb.Address, DisplayName: mb.DisplayName, TenantID: mb.TenantID}}, false
	}
	if u == nil {
		return fail(http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '"+rt.user+"' does not exist or one of its queried reference-property objects are not present.")
	}
	base := baseURL(r)
	switch rt.endpoint {
	case "user.get":
		obj := map[string]any{
			"@odata.context": base + "/v1.0/$metadata#users/$entity",
			"id":             u.ID, "userPrincipalName": u.UPN, "displayName": u.DisplayName, "mail": u.UPN,
			"givenName": nil, "surname": nil, "jobTitle": nil, "mobilePhone": nil, "officeLocation": nil,
			"preferredLanguage": "de-DE", "businessPhones": []string{}, "accountEnabled": enabled,
		}
		return answerJSON(http.StatusOK, selectFields(obj, r.URL.Query().Get("$select")))
	case "user.memberOf":
		all := make([]any, 0, len(groups))
		for _, g := range groups {
			all = append(all, map[string]any{"@odata.type": "#microsoft.graph.group", "id": g.ID, "displayName": g.DisplayName,
				"securityEnabled": true, "mailEnabled": false})
		}
		return page(r, base+"/v1.0/$metadata#directoryObjects", all, 100)
	default: // user.getMemberGroups
		ids := make([]string, 0, len(groups))
		for _, g := range groups {
			ids = append(ids, g.ID)
		}
		return answerJSON(http.StatusOK, map[string]any{"@odata.context": base + "/v1.0/$metadata#Collection(Edm.String)", "value": ids})
	}
}
