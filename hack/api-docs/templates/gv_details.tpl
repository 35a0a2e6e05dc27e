{{- /* gvDetails lists the kinds of one group version first, then the types they use. */ -}}
{{- define "gvDetails" -}}
{{- $gv := . -}}
## {{ $gv.GroupVersionString }}

{{ $gv.Doc | trim }}

Kinds:
{{ range $gv.SortedKinds }}
- {{ $gv.TypeForKind . | markdownRenderTypeLink }}
{{- end }}
{{- range $gv.SortedKinds }}
{{ template "type" ($gv.TypeForKind .) }}
{{- end }}

## Types used by the kinds
{{- range $gv.SortedTypes }}
{{- if and (not .GVK) (markdownShouldRenderType .) }}
{{ template "type" . }}
{{- end }}
{{- end }}
{{- end -}}
