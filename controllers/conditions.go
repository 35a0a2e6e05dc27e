package controllers

import mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"

// reasonPolicy is what a Ready=False reason means beyond Ready itself: the
// kstatus conditions GitOps tools read (and so the Argo CD health check in
// internal/argocd), and whether the reason is news worth a Warning Event.
type reasonPolicy struct {
	// stalled: nothing but a person can clear it (the spec, a Clerk key or a
	// conflict must change), so Stalled is set and Reconciling is not.
	// Otherwise the reason clears itself (pods start, an address is
	// assigned, a Secret GitOps creates later appears, Clerk comes back) and
	// Reconciling is set.
	stalled bool
	// settled: the object is where its spec asks it to be although not Ready
	// (scaled to zero), so neither Reconciling nor Stalled is set.
	settled bool
	// warns: a Warning Event is recorded even when the object was never
	// Ready, because someone must act (a missing Secret may be a typo). Any
	// reason warns when it ends a Ready=True.
	warns bool
}

// readyFalseReasons is the one table of the reasons Ready=False can carry,
// for McpServers and Clerk instance objects alike. TestReasonTable keeps it
// complete (every reason constant of the API is here or among the reasons
// that only ever go with True or with UpstreamIsolated) and checks the Argo
// CD health check against it.
var readyFalseReasons = map[string]reasonPolicy{
	mcpv1.ReasonProgressing:           {},
	mcpv1.ReasonReconcileError:        {},
	mcpv1.ReasonDeploymentUnavailable: {},
	mcpv1.ReasonAddressPending:        {},
	mcpv1.ReasonRoutePending:          {},
	mcpv1.ReasonClerkRateLimited:      {},
	mcpv1.ReasonClerkUnavailable:      {},
	mcpv1.ReasonScaledToZero:          {settled: true},
	// Objects that GitOps may create after the McpServer: the condition
	// clears by itself when they appear, but a typo never will, so it warns.
	mcpv1.ReasonSecretNotFound:        {warns: true},
	mcpv1.ReasonUpstreamPortNotFound:  {warns: true},
	mcpv1.ReasonClerkInstanceNotFound: {warns: true},
	// Only a change to the spec, the Clerk key or another object can help.
	mcpv1.ReasonInvalidSpec:       {stalled: true, warns: true},
	mcpv1.ReasonHostPathConflict:  {stalled: true, warns: true},
	mcpv1.ReasonConflict:          {stalled: true, warns: true},
	mcpv1.ReasonClerkUnauthorized: {stalled: true, warns: true},
	mcpv1.ReasonClerkRejected:     {stalled: true, warns: true},
	mcpv1.ReasonBrokerRequired:    {stalled: true, warns: true},
	// The Gateway API missing, or a Gateway refusing the route, needs the
	// platform team rather than the McpServer's author, so the author's
	// object gets no Warning of its own before it was ever Ready.
	mcpv1.ReasonGatewayAPIUnavailable: {stalled: true},
	mcpv1.ReasonRouteNotAccepted:      {stalled: true},
}

// policyOf returns reason's policy; a reason missing from the table is
// treated as one that clears itself.
func policyOf(reason string) reasonPolicy { return readyFalseReasons[reason] }
