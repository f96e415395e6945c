# bash completion for strata
_strata_layer_ids() {
	local root=${STRATA_ROOT:-/var/lib/strata} i
	for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
		[ "${COMP_WORDS[i]}" = --root ] && root=${COMP_WORDS[i + 1]}
	done
	ls "$root/layers" 2>/dev/null
}

_strata() {
	local cur prev cmd i
	cur=${COMP_WORDS[COMP_CWORD]}
	prev=${COMP_WORDS[COMP_CWORD - 1]}
	local commands="init status create create-rw exists metadata parents ls rm mount unmount cleanup changes apply diff diff-size diff-get help version"
	local global="--root --format --quiet --help"

	case $prev in
	--root) COMPREPLY=($(compgen -d -- "$cur")); return ;;
	--format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
	--parent | -p) COMPREPLY=($(compgen -W "$(_strata_layer_ids)" -- "$cur")); return ;;
	--engine | -e) COMPREPLY=($(compgen -W "auto aufs fuse" -- "$cur")); return ;;
	--output | -o) COMPREPLY=($(compgen -f -- "$cur")); return ;;
	esac

	for ((i = 1; i < COMP_CWORD; i++)); do
		case ${COMP_WORDS[i]} in
		--root | --format) ((i++)) ;;
		-*) ;;
		*) cmd=${COMP_WORDS[i]}; break ;;
		esac
	done
	if [ -z "$cmd" ]; then
		COMPREPLY=($(compgen -W "$commands $global" -- "$cur"))
		return
	fi
	case $cmd in
	create | create-rw) COMPREPLY=($(compgen -W "--parent --storage-opt $global" -- "$cur")) ;;
	rm) COMPREPLY=($(compgen -W "--force $global $(_strata_layer_ids)" -- "$cur")) ;;
	ls) COMPREPLY=($(compgen -W "--tree $global" -- "$cur")) ;;
	mount) COMPREPLY=($(compgen -W "--label $global $(_strata_layer_ids)" -- "$cur")) ;;
	exists | metadata | parents | unmount | diff-get)
		COMPREPLY=($(compgen -W "$global $(_strata_layer_ids)" -- "$cur")) ;;
	init) COMPREPLY=($(compgen -W "--engine --uidmap --gidmap $global" -- "$cur")) ;;
	changes | diff-size) COMPREPLY=($(compgen -W "--parent $global $(_strata_layer_ids)" -- "$cur")) ;;
	diff) COMPREPLY=($(compgen -W "--parent --output --regenerate $global $(_strata_layer_ids)" -- "$cur")) ;;
	apply)
		COMPREPLY=($(compgen -W "--parent --no-tar-split --serial --threads $global $(_strata_layer_ids)" -- "$cur"))
		COMPREPLY+=($(compgen -f -- "$cur")) ;;
	help) COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
	*) COMPREPLY=($(compgen -W "$global" -- "$cur")) ;;
	esac
}
complete -F _strata strata
