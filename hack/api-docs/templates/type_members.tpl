{{- /* type_members is the description cell of one field. */ -}}
{{- define "type_members" -}}
{{- if eq .Name "metadata" -}}
Standard object metadata.
{{- else -}}
{{ template "oneLine" .Doc }}
{{- end -}}
{{- end -}}
