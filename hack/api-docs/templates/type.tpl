{{- /* type renders one type, starting with a newline: its doc, its own
checks, where it is used, and its fields or values. */ -}}
{{- define "type" -}}
{{- $type := . }}
### {{ $type.Name }}
{{- if $type.IsAlias }}

Type: {{ markdownRenderTypeLink $type.UnderlyingType }}{{ if $type.Validation }}; {{ template "checks" $type.Validation }}{{ end }}
{{- end }}

{{ template "prose" ($type.Doc | trim) }}
{{- if $type.References }}

Used in:
{{- range $i, $ref := $type.SortedReferences }}{{ if $i }},{{ end }} {{ markdownRenderTypeLink $ref }}{{ end }}
{{- end }}
{{- if $type.Members }}

| Field | Type | Default | Checks | Description |
| --- | --- | --- | --- | --- |
{{- if $type.GVK }}
| `apiVersion` | string | `{{ $type.GVK.Group }}/{{ $type.GVK.Version }}` | required | |
| `kind` | string | `{{ $type.GVK.Kind }}` | required | |
{{- end }}
{{- range $type.Members }}
| `{{ .Name }}` | {{ markdownRenderType .Type }} | {{ with .Default }}`{{ . }}`{{ end }} | {{ template "checks" .Validation }} | {{ template "type_members" . }} |
{{- end }}
{{- end }}
{{- if $type.EnumValues }}

| Value | Meaning |
| --- | --- |
{{- range $type.EnumValues }}
| `{{ .Name }}` | {{ template "oneLine" .Doc }} |
{{- end }}
{{- end }}
{{- end -}}

{{- /* checks renders validation markers as one table cell, leaving out the
"optional" marker every optional field carries and spelling "required" plainly. */ -}}
{{- define "checks" -}}
{{- $out := list -}}
{{- range . -}}
{{- if eq . "Required: {}" -}}{{- $out = append $out "required" -}}
{{- else if ne . "Optional: {}" -}}{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- join ", " $out | markdownRenderFieldDoc -}}
{{- end -}}

{{- /* oneLine joins the lines of a doc comment, which are wrapped for the
source, into one table cell, keeping paragraph breaks; it escapes as prose does. */ -}}
{{- define "oneLine" -}}
{{- . | replace "<" "&lt;" | replace ">" "&gt;" | replace "*" "\\*" | trim | replace "\n\n" "<br /><br />" | replace "\n" " " | replace "|" "\\|" -}}
{{- end -}}

{{- /* prose escapes what Markdown would otherwise read as HTML or emphasis in a
doc comment, such as https://<host><path> or X-Forwarded-*. */ -}}
{{- define "prose" -}}
{{- . | replace "<" "&lt;" | replace ">" "&gt;" | replace "*" "\\*" -}}
{{- end -}}
