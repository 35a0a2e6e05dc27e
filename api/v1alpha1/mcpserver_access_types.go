package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scope is an OAuth scope token (RFC 6749 section 3.3): printable ASCII
// without spaces, quotes or backslashes.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule=`self.matches('^[!#-\\[\\]-~]+$')`,message="must be a non-empty scope without spaces, quotes or backslashes"
type Scope string

// ToolName is an MCP tool name, as in tools/list: printable ASCII without spaces.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$')",message="must be a tool name without spaces"
type ToolName string

// ToolScope is the set of scopes a tools/call for one tool needs, on top of spec.scopes.
type ToolScope struct {
	// tool is the MCP tool name, as in tools/list.
	// +required
	Tool ToolName `json:"tool"`

	// scopes the tool needs.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +required
	Scopes []Scope `json:"scopes"`
}

// ToolScopeChallenge says when clients are asked for an McpServer's tool
// scopes: StepUp or AtSignIn.
// +kubebuilder:validation:Enum=StepUp;AtSignIn
type ToolScopeChallenge string

// The values of spec.toolScopeChallenge.
const (
	// ToolScopeChallengeStepUp asks for a tool's scopes when it is called,
	// with a 403 insufficient_scope (step-up authorization).
	ToolScopeChallengeStepUp ToolScopeChallenge = "StepUp"
	// ToolScopeChallengeAtSignIn asks for every tool's scopes at sign-in,
	// in the 401 challenge, for clients that cannot step up.
	ToolScopeChallengeAtSignIn ToolScopeChallenge = "AtSignIn"
)

// AccessSpec holds the rules on who may call an McpServer and its tools.
// Scopes bound what a client may do on a user's behalf; these rules bound
// which users may use the server at all. At least one of allow and
// toolAccess is set: to admit every signed-in user, leave access out.
// +kubebuilder:validation:XValidation:rule="has(self.allow) || has(self.toolAccess)",message="access needs access.allow or access.toolAccess rules; to admit every signed-in user, remove access",reason=FieldValueRequired
type AccessSpec struct {
	// allow admits a request when any entry matches the caller; every
	// other caller is refused. Unset, every signed-in user may call the
	// server, and only toolAccess restricts particular tools.
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +optional
	Allow []AccessRule `json:"allow,omitempty"`

	// toolAccess restricts who may call particular tools: a tools/call of
	// a listed tool needs a match in allow (when set) and in the tool's own
	// allow. Tools not listed need only a match in allow. A tool appears at
	// most once.
	// +listType=map
	// +listMapKey=tool
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +optional
	ToolAccess []ToolAccess `json:"toolAccess,omitempty"`

	// cacheTTL is how long a gateway trusts what it learned about a user
	// from Clerk (verified email addresses, organization memberships, roles
	// and permissions) before asking again. It bounds how long a user keeps
	// access after leaving an organization or losing a role. From 5s to 1h;
	// default 60s.
	// +kubebuilder:default="60s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",message="must be a duration such as 60s, 5m or 1h"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('5s') && duration(self) <= duration('1h'))",message="must be from 5s to 1h"
	// +optional
	CacheTTL *metav1.Duration `json:"cacheTTL,omitempty"`
}

// ToolAccess lists who may call one tool.
type ToolAccess struct {
	// tool is the MCP tool name, as in tools/list.
	// +required
	Tool ToolName `json:"tool"`

	// allow admits a tools/call of the tool when any entry matches the
	// caller (who must also match spec.access.allow, when set).
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +required
	Allow []AccessRule `json:"allow"`
}

// AccessRule matches callers by one fact Clerk holds about them. Exactly one
// of organization, emailDomain and user is set; roles and permissions
// narrow an organization entry. To admit callers matching any of several
// facts, list several entries.
// +kubebuilder:validation:XValidation:rule="has(self.organization) || has(self.emailDomain) || has(self.user)",message="an access entry must set one of organization, emailDomain or user",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="(has(self.organization) ? 1 : 0) + (has(self.emailDomain) ? 1 : 0) + (has(self.user) ? 1 : 0) <= 1",message="an access entry sets only one of organization, emailDomain or user; list several entries to admit any of them",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.roles) || has(self.organization)",message="roles apply only to an organization entry",fieldPath=".roles",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="!has(self.permissions) || has(self.organization)",message="permissions apply only to an organization entry",fieldPath=".permissions",reason=FieldValueForbidden
type AccessRule struct {
	// organization admits members of a Clerk organization, given by its ID
	// (org_...) or its slug. With roles or permissions, only members who
	// also have one of those roles and hold one of those permissions.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('org_') || self.matches('^org_[A-Za-z0-9]+$')",message="must be an organization ID (org_ followed by letters and digits) or slug"
	// +kubebuilder:validation:XValidation:rule="self.startsWith('org_') || self.matches('^[a-z0-9-]+$')",message="must be an organization slug (lowercase letters, digits and '-') or ID (org_...)"
	// +optional
	Organization string `json:"organization,omitempty"`

	// roles, in an organization entry, admits only members whose role is
	// any of these keys, such as org:admin or org:member.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Roles []OrganizationRole `json:"roles,omitempty"`

	// permissions, in an organization entry, admits only members whose role
	// grants any of these permission keys, such as org:tools:write or
	// org:sys_memberships:manage.
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Permissions []OrganizationPermission `json:"permissions,omitempty"`

	// emailDomain admits users with a verified email address in exactly
	// this domain, such as example.com (not its subdomains), compared
	// without regard to case. Dot-separated DNS labels, without '@', a
	// wildcard or a trailing dot.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?([.][A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$')",message="must be an email domain such as example.com: dot-separated DNS labels, without '@', a wildcard or a trailing dot"
	// +optional
	EmailDomain string `json:"emailDomain,omitempty"`

	// user admits one Clerk user, by ID (user_...).
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^user_[A-Za-z0-9]+$')",message="must be a Clerk user ID: user_ followed by letters and digits"
	// +optional
	User string `json:"user,omitempty"`
}

// OrganizationRole is a Clerk organization role key: org: followed by
// lowercase letters, digits and '_', such as org:admin.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^org:[a-z0-9_]+$')",message="must be an organization role key such as org:admin: 'org:' then lowercase letters, digits and '_'"
type OrganizationRole string

// OrganizationPermission is a Clerk organization permission key,
// org:<feature>:<action>, such as org:tools:write.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.matches('^org:[a-z0-9_]+:[a-z0-9_]+$')",message="must be an organization permission key such as org:tools:write: 'org:', a feature and an action of lowercase letters, digits and '_', separated by ':'"
type OrganizationPermission string
