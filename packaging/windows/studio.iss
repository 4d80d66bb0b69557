; Inno Setup script: installs the PyInstaller folder dist\Studio as a per-user program.
;
;   iscc /DAppVersion=0.1.0 packaging\windows\studio.iss
;
; Run from the repository root after `pyinstaller packaging/studio.spec`; writes
; dist\Studio-<version>-windows-x64-setup.exe. Per-user (no admin rights): artists often have no
; administrator account, and the app writes nothing outside their profile.

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#define SourceDir "..\..\dist\Studio"

[Setup]
AppId={{6E0B7C1F-5C1B-4B4E-9C53-2E3D1A9C7F10}
AppName=Studio
AppVersion={#AppVersion}
AppPublisher=Studio contributors
DefaultDirName={localappdata}\Programs\Studio
DefaultGroupName=Studio
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=Studio-{#AppVersion}-windows-x64-setup
; torch is large: solid LZMA2 keeps the installer near the size of a zip of the folder.
Compression=lzma2/max
SolidCompression=yes
WizardStyle=modern
UninstallDisplayIcon={app}\Studio.exe

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Studio"; Filename: "{app}\Studio.exe"
Name: "{autodesktop}\Studio"; Filename: "{app}\Studio.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\Studio.exe"; Description: "{cm:LaunchProgram,Studio}"; Flags: nowait postinstall skipifsilent
